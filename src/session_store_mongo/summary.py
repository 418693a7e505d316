"""Settling a transcript: its counts and its summary, exact whatever failed, across processes.

Usage::

    from session_store_mongo.summary import Summaries, summary_view

    summaries = Summaries(collections, connection, lease_ms=120_000, sealer=None)
    await summaries.settle_own(key, block, stored)          # after an append's insert
    doc = await summaries.catch_up(key, ident, doc, fold)   # settle whatever is decided
    summary = await summaries.view(doc, key)                # what list_session_summaries shows

In an encrypted store (``sealer``) the summary is sealed in ``summary_sealed``; ``view`` opens it.

Three positions on a transcript's ``sessions`` document, always ``summary_seq <= settled <= seq``:

- ``seq``: the last sequence number reserved. Every append reserves a block of numbers first.
- ``settled``: every number up to it is decided for good, and ``count`` and ``bytes`` are
  exactly the entries stored there. A number is decided once a document sits on it (an entry,
  or a *hole*: a placeholder that makes any later insert on that number fail on the unique
  ``entry_seq`` index), or once its own writer has settled it (a uuid skipped as a duplicate
  leaves its number empty, and nothing else can ever be inserted there).
- ``summary_seq``: every entry up to it is folded into ``summary`` (the SDK's fold); a process
  without the SDK settles counts and leaves the summary behind, to be caught up later.

A writer whose block directly follows ``settled`` settles it with one compare-and-set on
``settled``, adding the entries it stored and, when the summary is caught up, folding them in.
Where no writer reserved behind it, that compare-and-set can travel with the block's inserts
(``settlement``, sent last in one ordered ``bulkWrite``): it then also requires ``seq`` to be
the block's end, and applies only once every entry is stored.
Any other writer makes its block decided (a hole on each number it skipped) and leaves it to the
writer in front, whose catch-up reads the decided documents and settles them too. A writer whose
insert failed in an unknown way puts a hole on each number where none of its entries landed
(*fencing*) before it reports the failure, so a late-landing insert cannot change what was
counted. A number left undecided for a whole lease (``lease_ms``: its writer died, or lost
contact) is fenced by whoever catches up next. Counts are therefore never adjusted by guesses:
they are sums over decided documents, written with a compare-and-set, so a lost reply, a retry
or a late insert cannot make them drift.

While the summary is behind it reports the older ``mtime`` at which it was last written, so the
SDK's staleness check loads the transcript instead of trusting it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, PyMongoError

from session_store_protocol.summaries import Fold, optional_fold
from session_store_protocol.types import MAIN_SUBPATH, SessionKey, SessionSummaryEntry

from .client import Connection
from .codec import PreparedEntry, decode_entry, encode_entry, epoch_ms
from .layout import KEY_FIELDS, Collections, hole
from .reader import Slot, read_slots
from .sealer import SUMMARY_SEALED, Sealer, unseal

if TYPE_CHECKING:
    from .append import Block

__all__ = ["DEFAULT_LEASE_MS", "Settlement", "Summaries", "may_hold_entries", "summary_view"]

log = logging.getLogger("session_store_mongo")

DEFAULT_LEASE_MS = 120_000
"""How long a sequence number may stay undecided (reserved, no document, not settled by its
writer) before it is taken as abandoned (its writer crashed or lost contact) and fenced."""
_ATTEMPTS = 16
"""Compare-and-set attempts before a writer leaves the rest to the next read or write."""


def may_hold_entries(doc: Mapping[str, Any]) -> bool:
    """Whether a transcript is listed: entries counted, or reservations not settled yet.

    A reservation past ``settled`` may hold entries that are stored but not counted yet (a
    writer in flight, or one that died before settling); the transcript is listed rather than
    hidden while they load. A deleted transcript (``count`` 0, all settled) is not.
    """
    return int(doc.get("count", 0)) > 0 or int(doc.get("settled", 0)) < int(doc.get("seq", 0))


def summary_view(doc: Mapping[str, Any], key: SessionKey) -> SessionSummaryEntry | None:
    """The stored summary; its ``mtime`` is the transcript's only when it is caught up.

    A summary still behind (writers in flight) carries the older time it was last written,
    so the SDK's staleness check sees it is behind and loads that transcript instead.
    """
    if "summary" not in doc:
        return None
    data = decode_entry(doc["summary"], doc.get("summary_escaped", False))
    caught_up = doc.get("summary_seq", 0) >= doc.get("seq", 0)
    mtime = epoch_ms(doc.get("mtime") if caught_up else doc.get("summary_at"))
    return {"session_id": key["session_id"], "mtime": mtime, "data": data}


class Summaries:
    """Settles the counts and folds the summaries of one store's transcripts."""

    def __init__(
        self,
        collections: Collections,
        connection: Connection,
        *,
        lease_ms: int,
        sealer: Sealer | None = None,
    ) -> None:
        self._collections = collections
        self._sessions = collections.sessions
        self._connection = connection
        self._lease_ms = lease_ms
        self._sealer = sealer

    async def view(self, doc: dict[str, Any], key: SessionKey) -> SessionSummaryEntry | None:
        """``summary_view`` of a session document, its summary opened if it is sealed."""
        if SUMMARY_SEALED in doc:
            doc = await unseal(self._sealer, doc, doc, SUMMARY_SEALED)
        return summary_view(doc, key)

    async def settle_own(self, key: SessionKey, block: Block, stored: list[PreparedEntry]) -> None:
        """Settle ``block`` after its insert: ``stored`` are the entries it holds.

        Never raises a driver error: the entries are stored, and failing the append would make
        the SDK retry it and duplicate entries without uuid. What is not settled now is settled
        by the next append or summary read (after the lease, if this block stays undecided).
        """
        fold = _fold_for(block.ident)
        doc = block.session
        try:
            for _ in range(_ATTEMPTS):
                if int(doc.get("settled", 0)) >= block.end:
                    break  # settled by someone who read our decided documents
                if int(doc.get("settled", 0)) != block.start - 1:
                    # Not next in line: make our block decidable by whoever is, then help.
                    await self._decide_skipped(block)
                    break
                settlement = await self._settlement(
                    key, block.ident, doc, fold, upto=block.end, fresh=stored
                )
                latest = await self._compare_and_set(settlement)
                if latest is None:
                    return  # deleted meanwhile: nothing left to settle
                doc = latest  # settled through our block, unless another writer came first
            await self.catch_up(key, block.ident, doc, fold)
        except PyMongoError as exc:
            log.warning(
                "append on %s: entries stored, settling deferred: %s",
                self._connection.hosts,
                self._connection.describe(exc),
            )
            await self._decide_skipped(block, quietly=True)

    async def settle_decided(self, key: SessionKey, ident: dict[str, str]) -> None:
        """Settle whatever is decided now (after a fenced block), from the latest document."""
        doc = await self._sessions.find_one(ident)
        if doc is not None:
            await self.catch_up(key, ident, doc, _fold_for(ident))

    async def _decide_skipped(self, block: Block, *, quietly: bool = False) -> None:
        """Put a hole on each number of ``block`` whose entry was skipped as a duplicate."""
        if not block.skipped:
            return
        holes = [hole(block.ident, block.start + p.index) for p in block.skipped]
        try:
            await self._collections.entries.insert_many(holes, ordered=False)
        except BulkWriteError:
            pass  # a number already decided (fenced after the lease) needs no hole
        except PyMongoError:
            if not quietly:
                raise

    async def catch_up(
        self, key: SessionKey, ident: dict[str, str], doc: dict[str, Any], fold: Fold | None
    ) -> dict[str, Any]:
        """Settle the decided numbers past ``settled``, and fold what the summary lacks.

        ``fold`` is ``None`` for subagent transcripts and where the SDK is missing: only counts
        are settled then. Numbers undecided for a whole lease are fenced first.

        Returns:
            The latest session document this step saw or wrote.
        """
        for _ in range(_ATTEMPTS):
            settled, reserved = int(doc.get("settled", 0)), int(doc.get("seq", 0))
            folded = int(doc.get("summary_seq", 0))
            behind = fold is not None and folded < settled
            if settled >= reserved and not behind:
                return doc
            start = min(folded, settled) if fold is not None else settled
            slots = await self._slots(ident, start, reserved)
            decided = _decided_upto(slots, settled, reserved)
            if decided < reserved and self._abandoned(doc):
                await self._fence(ident, slots, settled, reserved)
                slots = await self._slots(ident, start, reserved)
                decided = _decided_upto(slots, settled, reserved)
            if decided == settled and not behind:
                return doc  # the next number's writer is still in flight: it settles itself
            fresh = [s for s in slots if settled < s.seq <= decided]
            pending = [s.entry for s in slots if folded < s.seq <= decided and s.entry is not None]
            settlement = await self._settlement(
                key, ident, doc, fold, upto=decided, fresh=fresh, pending=pending
            )
            latest = await self._compare_and_set(settlement)
            if latest is None:  # deleted meanwhile
                return doc
            doc = latest
        return doc

    async def caught_up_view(
        self, key: SessionKey, ident: dict[str, str], doc: Mapping[str, Any], fold: Fold
    ) -> SessionSummaryEntry | None:
        """The summary ``catch_up`` would write, computed without writing (for a reader).

        A user who may only read cannot settle or fold; it folds the decided entries the
        stored summary lacks in memory. Its ``mtime`` is the transcript's only when nothing
        is left undecided, as for a stored summary (``summary_view``).
        """
        settled, reserved = int(doc.get("settled", 0)), int(doc.get("seq", 0))
        folded = int(doc.get("summary_seq", 0))
        slots = await self._slots(ident, min(folded, settled), reserved)
        decided = _decided_upto(slots, settled, reserved)
        stored = await self.view(dict(doc), key)
        if decided <= folded:
            return stored
        pending = [s.entry for s in slots if folded < s.seq <= decided and s.entry is not None]
        data = fold(stored, key, pending)["data"]
        caught_up = decided >= reserved
        mtime = epoch_ms(doc.get("mtime") if caught_up else doc.get("summary_at"))
        return {"session_id": key["session_id"], "mtime": mtime, "data": data}

    async def settle_as_deleted(self, scope: Mapping[str, str]) -> None:
        """Before a delete: fence and settle every number reserved in ``scope`` but not settled.

        ``scope`` is a transcript's key fields, or a session's (all its transcripts).
        """
        cursor = self._sessions.find(scope, {"subpath": 1, "seq": 1, "settled": 1})
        async for doc in cursor:
            settled, reserved = int(doc.get("settled", 0)), int(doc.get("seq", 0))
            if settled >= reserved:
                continue
            ident = {**scope, "subpath": doc["subpath"]}
            await self._fence(ident, [], settled, reserved)
            await self._sessions.update_one(
                ident, {"$max": {"settled": reserved}, "$unset": {"pending_since": ""}}
            )

    async def _slots(self, ident: dict[str, str], after: int, upto: int) -> list[Slot]:
        return await read_slots(
            self._collections, ident, after=after, upto=upto, sealer=self._sealer
        )

    def _abandoned(self, doc: Mapping[str, Any]) -> bool:
        """Whether the oldest unsettled reservation has waited a whole lease."""
        since = doc.get("pending_since") or doc.get("settled_at") or doc.get("created")
        return epoch_ms(since) < time.time() * 1000 - self._lease_ms

    async def _fence(
        self, ident: dict[str, str], slots: Sequence[Slot], settled: int, reserved: int
    ) -> None:
        """Put a hole on every undecided number in ``(settled, reserved]``."""
        present = {slot.seq for slot in slots}
        holes = [hole(ident, seq) for seq in range(settled + 1, reserved + 1) if seq not in present]
        if holes:
            # A number where an insert landed first is decided as well.
            with contextlib.suppress(BulkWriteError):
                await self._collections.entries.insert_many(holes, ordered=False)

    async def settlement(self, key: SessionKey, block: Block) -> Settlement | None:
        """The compare-and-set that settles ``block`` with every entry stored, sent with them.

        Only for the block next in line with no writer behind it (``seq`` still its end):
        that writer's block is settled by ``settle_own``'s catch-up, which this skips.

        Returns:
            The filter and update, or ``None`` when ``settle_own`` must settle the block.
        """
        doc = block.session
        if int(doc.get("settled", 0)) != block.start - 1:
            return None
        settlement = await self._settlement(
            key, block.ident, doc, _fold_for(block.ident), upto=block.end, fresh=block.entries
        )
        settlement.filter["seq"] = block.end
        return settlement

    async def _compare_and_set(self, settlement: Settlement) -> dict[str, Any] | None:
        """Apply ``settlement`` if its conditions still hold, finding the document by its key.

        Returns:
            The transcript's document after it, whether it applied or another writer settled
            or folded first: the latest state, for the caller to go on from. ``None`` if the
            transcript was deleted.
        """
        result: dict[str, Any] | None = await self._sessions.find_one_and_update(
            *settlement.on_key(), return_document=ReturnDocument.AFTER
        )
        return result

    async def _settlement(
        self,
        key: SessionKey,
        ident: dict[str, str],
        doc: dict[str, Any],
        fold: Fold | None,
        *,
        upto: int,
        fresh: Sequence[PreparedEntry | Slot],
        pending: list[Any] | None = None,
    ) -> Settlement:
        """Settle through ``upto`` if nobody settled since ``doc``; fold if the summary can.

        ``fresh`` are the entries (or slots) of ``(settled, upto]``: they are counted.
        ``pending`` are the entries the summary lacks through ``upto``; by default ``fresh``,
        folded only when the summary is caught up to ``settled``.
        """
        settled = int(doc.get("settled", 0))
        entries = [item.entry for item in fresh if item.entry is not None]
        update: dict[str, Any] = {
            "$set": {"settled": upto},
            "$inc": {"count": len(entries), "bytes": sum(item.size for item in fresh)},
            "$currentDate": {"settled_at": True},
        }
        if upto >= int(doc.get("seq", 0)):
            update["$unset"] = {"pending_since": ""}
        elif upto > settled:
            update["$set"]["pending_since"] = datetime.now(timezone.utc)
        filter_: dict[str, Any] = {**ident, "settled": settled}
        if "settled" not in doc:  # a document from before the field: missing means 0
            filter_["settled"] = {"$in": [0, None]}
        if pending is None and int(doc.get("summary_seq", 0)) == settled:
            pending = entries
        if fold is not None and pending is not None:
            summary = fold(await self.view(doc, key), key, pending)
            stored, escaped = encode_entry(summary["data"], "summary")
            content: dict[str, Any] = {"summary": stored, "summary_escaped": escaped}
            if self._sealer is not None:
                content = {SUMMARY_SEALED: await self._sealer.seal(ident, content)}
                # A summary written before encryption was turned on must not stay in clear.
                update.setdefault("$unset", {}).update({"summary": "", "summary_escaped": ""})
            update["$set"].update({**content, "summary_seq": upto})
            update["$inc"]["summary_version"] = 1
            update["$currentDate"]["summary_at"] = True
            filter_["summary_version"] = doc.get("summary_version", {"$exists": False})
        return Settlement(filter_, update)


@dataclass(frozen=True)
class Settlement:
    """A compare-and-set on a transcript's document that settles numbers (and folds)."""

    filter: dict[str, Any]
    update: dict[str, Any]

    def on_key(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The same compare-and-set as a filter on the key alone and a conditional update.

        Each field the update writes is set to its new value if the document still meets the
        filter's conditions, else to its own value: applied only as a whole, as the plain
        form; it modifies the document (``modified_count``) exactly when that would match
        (settling always moves ``settled``).
        Why: a server may bound a query by an index only for a filter of nothing but its
        fields (the test server, SecantusDB, scans for the key plus a condition); every server
        finds one document by its unique key.
        """
        filter_ = {name: self.filter[name] for name in KEY_FIELDS}
        conditions = [
            _condition(name, wanted)
            for name, wanted in self.filter.items()
            if name not in KEY_FIELDS
        ]
        fields: dict[str, Any] = {}
        for operator, changes in self.update.items():
            for name, value in changes.items():
                assert name not in fields, name  # one write a field
                assert "." not in name, name  # top-level fields only
                new = _new_value(operator, name, value)
                fields[name] = {"$cond": [f"${_HOLDS}", new, f"${name}"]}
        # The conditions are evaluated once, into a field of their own that the last stage
        # drops (each field's $cond reads it): a third of the cost on the test server.
        holds = {"$set": {_HOLDS: {"$and": conditions}}}
        return filter_, [holds, {"$set": fields}, {"$project": {_HOLDS: 0}}]

    def applied(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` as the update leaves it, for a document not stored yet (nothing to compare).

        ``append_new`` inserts a new transcript's document settled in the transaction that
        inserts its entries: the same fields this compare-and-set would write.
        """
        now = datetime.now(timezone.utc)
        result = dict(doc)
        for operator, changes in self.update.items():
            for name, value in changes.items():
                if operator == "$set":
                    result[name] = value
                elif operator == "$inc":
                    result[name] = result.get(name, 0) + value
                elif operator == "$unset":
                    result.pop(name, None)
                elif operator == "$currentDate":
                    result[name] = now
                else:
                    raise ValueError(f"no value for {operator} on {name}")
        return result


_HOLDS = "settlement_holds"
"""The field ``Settlement.on_key`` holds its conditions' outcome in while its update runs."""


def _condition(name: str, wanted: Any) -> dict[str, Any]:
    """A query condition on one field as an aggregation expression (the ones settling uses)."""
    if not isinstance(wanted, dict):
        return {"$eq": [f"${name}", {"$literal": wanted}]}
    [(operator, operand)] = wanted.items()
    if operator == "$exists":
        present = {"$ne": [{"$type": f"${name}"}, "missing"]}
        return present if operand else {"$not": [present]}
    if operator == "$in":  # a missing field is null to ``$in``, as to a query
        return {"$in": [{"$ifNull": [f"${name}", None]}, {"$literal": operand}]}
    raise ValueError(f"no expression for {operator} on {name}")


def _new_value(operator: str, name: str, value: Any) -> Any:
    """What an update operator writes to one field, as an aggregation expression."""
    if operator == "$set":
        return {"$literal": value}
    if operator == "$inc":
        return {"$add": [{"$ifNull": [f"${name}", 0]}, value]}
    if operator == "$unset":
        return "$$REMOVE"
    if operator == "$currentDate":
        return "$$NOW"
    raise ValueError(f"no expression for {operator} on {name}")


def _fold_for(ident: Mapping[str, str]) -> Fold | None:
    """The SDK's fold for a main transcript where it is installed; subagents have no summary."""
    return optional_fold() if ident["subpath"] == MAIN_SUBPATH else None


def _decided_upto(slots: Sequence[Slot], settled: int, reserved: int) -> int:
    """The highest number through which everything past ``settled`` holds a document."""
    present = {slot.seq for slot in slots}
    decided = settled
    while decided < reserved and decided + 1 in present:
        decided += 1
    return decided
