"""Appending a batch, top to bottom: validate, reserve, insert, settle.

Usage (``MongoSessionStore.append`` does this)::

    from session_store_mongo.append import Appender

    appender = Appender(collections, connection, summaries, max_entry_bytes=None)
    await appender.append(key, entries, ready=store_ready)  # store_ready() -> ClientFacts

1. **Validate** the key and every entry, and encode the batch (and seal it, in an encrypted
   store): nothing is written if anything is wrong.
2. **Reserve** a block of sequence numbers with one atomic ``$inc`` on the transcript's
   ``sessions`` document (``Block.reserve``). The order of reservations on the server is the
   order of the transcript.
3. **Insert** the entries with one unordered ``insert_many`` (``Block.insert``): an entry whose
   ``uuid`` is stored already is skipped. If the insert fails, its outcome is unknown (the
   server may still be running it): the block is *fenced* (``Block.fence``), a hole on each of
   its numbers where none of our entries landed, so nothing can land there later; what landed
   is settled, and unless every entry landed the error is raised (appending again is safe).
4. **Settle** the block: count it and, for a main transcript, fold its fresh entries into the
   summary (``Summaries.settle_own``; ``summary`` explains the positions and why they cannot
   drift).

Steps 3 and 4 travel in one command where the server takes ``bulkWrite`` (MongoDB 8.0+): the
entries' inserts, then the settling compare-and-set, ordered (``Block.insert_settling``). The
server applies the settling only after every insert, and nothing after a refused entry, so the
writes and their conditions are exactly those of the separate steps; only the round trip is
saved. An append is then 2 round trips: reserve, then insert-and-settle. A refused entry (a
duplicate ``uuid``: a retried batch) falls back to step 3 on its own, sending the batch again
(entries already inserted come back as duplicates of their own ``_id``: stored), then step 4.
The settling goes along only when it is the block's to do without help: next in line, no writer
reserved behind it (whose block the full step 4 would settle too), no entry in chunks.

New transcripts (``append_new``, for imports) skip the reservation: a document is created with
its numbers ``1..n`` taken. Where the deployment takes transactions, each document is inserted
already settled and folded, as step 4 would leave it, in one transaction with the entries: all
or nothing, so no count can ever claim an entry that is not stored, and no settling is sent.
Elsewhere (or if the transaction is refused) the steps run apart: create reserved, insert, settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from bson import ObjectId
from pymongo import DESCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ClientBulkWriteException,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from session_store_protocol.errors import (
    EncryptionKeyError,
    InvalidEntryError,
    StoreUnavailableError,
)
from session_store_protocol.types import SessionKey, SessionStoreEntry
from session_store_protocol.validation import validate_entries, validate_key

from .client import ClientFacts, Connection
from .codec import PreparedEntry, checked_mtime, prepare_entry
from .driver import maybe_await
from .layout import ENCRYPTED, Collections, hole, key_fields
from .sealer import Sealer, clear_refused, is_encrypted, key_destroyed, written_sealed
from .summary import Settlement, Summaries

__all__ = ["Appender", "Block", "NewTranscript"]


class NewTranscript(NamedTuple):
    """A transcript for ``append_new``: its key, all its entries, and when it was last written.

    ``mtime`` is what listings, summaries and retention report (``None``: now, by this
    client's clock); an import keeps a file's modification time, as ``cp -p`` does.
    """

    key: SessionKey
    entries: list[SessionStoreEntry]
    mtime: datetime | None = None


log = logging.getLogger("session_store_mongo")

_RESERVE_ATTEMPTS = 3


class Appender:
    """Appends batches to one store's collections."""

    def __init__(
        self,
        collections: Collections,
        connection: Connection,
        summaries: Summaries,
        *,
        max_entry_bytes: int | None,
        sealer: Sealer | None = None,
        bulk_write: bool = True,
        transactions: bool = True,
    ) -> None:
        self._collections = collections
        self._connection = connection
        self._summaries = summaries
        self._max_entry_bytes = max_entry_bytes
        self._sealer = sealer
        self._bulk_write = bulk_write
        self._transactions = transactions

    async def append(
        self,
        key: SessionKey,
        entries: list[SessionStoreEntry],
        *,
        ready: Callable[[], Awaitable[ClientFacts]],
    ) -> None:
        """Append ``entries`` in order, skipping those whose ``uuid`` the transcript holds.

        ``ready`` prepares the store for writing and returns what the client knows of the
        server (its document size limit, whether it takes ``bulkWrite``). Driver errors
        propagate raw; the store translates them.

        Raises:
            InvalidKeyError: Malformed key; nothing written.
            InvalidEntryError: Malformed batch, or an entry over ``max_entry_bytes``.
            StoreUnavailableError: Our numbers were taken: fenced after the lease, or the
                counter was behind its entries (repaired).
            KeyDestroyedError: ``forget`` destroyed the transcript's data key, or its session's
                (a new subagent transcript, while the tenant has no key); nothing written.
            EncryptionKeyError: The batch could not be sealed; or, in a store without
                encryption settings, the transcript (or, for a new one, its project) holds
                encrypted transcripts; nothing written.
        """
        clean = validate_key(key)
        batch = validate_entries(entries)
        if not batch:
            return
        facts = await ready()
        assert facts.max_bson is not None  # learned by ready()
        prepared = [
            prepare_entry(index, entry, facts.max_bson, self._max_entry_bytes)
            for index, entry in enumerate(batch)
        ]
        ident = key_fields(clean)
        if self._sealer is not None:
            await self._sealer.seal_batch(ident, prepared)
        refuse = (
            None if self._sealer is not None else functools.partial(self._refuse_clear, [ident])
        )
        block = await Block.reserve(
            self._collections,
            self._connection,
            ident,
            prepared,
            sealed=self._sealer is not None,
            before_creating=refuse,
        )
        refusal: EncryptionKeyError | None = None
        if "forgotten" in block.session:
            refusal = key_destroyed(ident, block.session["forgotten"])
        elif self._sealer is None and written_sealed(block.session):
            refusal = clear_refused(ident)  # entries in clear there would outlive ``forget``
        if refusal is not None:
            # Fence the numbers and settle the counts; the summary cannot be opened, so
            # nothing is folded. If this fails (or needs a sealed entry of another writer
            # opened), the lease fences them later.
            with contextlib.suppress(PyMongoError, EncryptionKeyError):
                await block.fence()
                await self._summaries.catch_up(clean, ident, block.session, None)
            raise refusal
        try:
            [stored] = await self._insert([(clean, block)], facts)
        except (PyMongoError, StoreUnavailableError):
            if not await self._settle_failed(clean, block):
                raise
            return  # every entry landed after all: the append succeeded
        if stored is not None:
            await self._summaries.settle_own(clean, block, stored)

    async def append_new(
        self,
        transcripts: Sequence[NewTranscript | tuple[SessionKey, list[SessionStoreEntry]]],
        *,
        ready: Callable[[], Awaitable[ClientFacts]],
    ) -> list[int | None]:
        """Store transcripts that do not exist yet, whole, for them all at once.

        Where the deployment takes transactions (a replica set or a sharded cluster), one
        transaction creates every transcript's document already settled and folded, and
        inserts every entry (``_create_whole``): three commands, and nothing is ever left in
        between (one transaction per ``TRANSACTION_BYTES`` of entries). Elsewhere, or when a
        transaction is refused (a transcript exists, a ``uuid`` repeats in a batch, another
        writer came first), three steps for its transcripts, each an append's own
        (``_create``). Either way a transcript that exists is left untouched, and an entry
        whose ``uuid`` repeats in its batch is stored once, as ``append`` stores it.

        Returns:
            Per transcript: the entries stored, or ``None`` if it existed already.

        Raises:
            InvalidKeyError, InvalidEntryError: A malformed key or entry; nothing written.
            KeyDestroyedError: A transcript or its session was forgotten, and sealing it would
                need a fresh data key; nothing written.
            StoreUnavailableError: The server failed. Transcripts created step by step are
                fenced and settled with what landed; a transaction's are all there or none
                is. Those created count as existing if the call is made again.
        """
        cleaned = [
            (
                validate_key(key),
                validate_entries(entries),
                datetime.now(timezone.utc) if mtime is None else checked_mtime(mtime),
            )
            for key, entries, mtime in _new_transcripts(transcripts)
        ]
        facts = await ready()
        assert facts.max_bson is not None  # learned by ready()
        planned = [
            (
                key,
                Block.new(
                    self._collections,
                    self._connection,
                    key_fields(key),
                    [
                        prepare_entry(index, entry, facts.max_bson, self._max_entry_bytes)
                        for index, entry in enumerate(batch)
                    ],
                    mtime,
                    sealed=self._sealer is not None,
                ),
            )
            for key, batch, mtime in cleaned
        ]
        if self._sealer is not None:
            for _, block in planned:
                await self._sealer.seal_batch(block.ident, block.entries)
        wanted = [(key, block) for key, block in planned if block.entries]
        if self._sealer is None:
            await self._refuse_clear([block.ident for _, block in wanted])
        created: list[Block | None] = []
        # Parts only for transactions: step by step, the whole call goes in three commands.
        for part in _parts(wanted) if self._transactions and facts.transactions else [wanted]:
            whole = (
                self._transactions
                and facts.transactions  # off once the deployment refused one after all
                and not any(block.chunked for _, block in part)
                and await self._create_whole(part, facts)
            )
            if whole:
                created += [block for _, block in part]
            else:
                created += await self._create(part, facts)
        stored = {id(block): len(block.entries) - len(block.skipped) for block in created if block}
        return [stored.get(id(block)) if block.entries else 0 for _, block in planned]

    async def _create_whole(
        self, keyed: Sequence[tuple[SessionKey, Block]], facts: ClientFacts
    ) -> bool:
        """Create new transcripts whole in one transaction: all or nothing, whatever fails.

        No crash point can leave a count without its entries, so each document is inserted
        settled and folded, as the settling compare-and-set would leave it
        (``Settlement.applied``), next to its entries; no settling is sent.

        Another transaction holding one of the keys (another writer creating the same
        transcript, or a transaction left open by a process that stopped, which the server
        aborts after its lifetime: 60 s on MongoDB) makes it abort and try again, for up to
        ``CONFLICT_WAIT_S``: a write outside a transaction would wait on that key (past the
        driver's socket timeout), where a transaction is told at once.

        Returns:
            Whether it committed. If not, nothing was written (a transcript exists already, a
            ``uuid`` repeats in a batch, the connection broke before the commit, or the
            deployment takes no transactions after all, which is remembered): ``_create``
            then sorts it out.

        Raises:
            StoreUnavailableError: The keys stayed held by another transaction for
                ``CONFLICT_WAIT_S``; nothing written.
            PyMongoError: The commit's outcome is unknown (its reply was lost, and that of
                the driver's retry): every transcript was created whole, or none was.
        """
        documents = []
        for key, block in keyed:
            settlement = await self._summaries.settlement(key, block)
            assert settlement is not None  # a new transcript's block is next in line
            documents.append(settlement.applied(block.session))
        entries = [document for _, block in keyed for document in block.documents()]
        client = self._collections.database.client
        session = await maybe_await(client.start_session())
        deadline = time.monotonic() + CONFLICT_WAIT_S
        pause = 0.0
        try:
            while True:
                try:
                    await maybe_await(session.start_transaction())
                    await self._collections.sessions.insert_many(documents, session=session)
                    await self._collections.entries.insert_many(entries, session=session)
                    break
                except PyMongoError as exc:
                    if _no_transactions(exc):
                        facts.transactions = False
                    if not _write_conflict(exc):
                        return False  # ``end_session`` aborts it
                await session.abort_transaction()
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"append_new on {self._connection.hosts}: new transcripts of project "
                        f"{keyed[0][1].ident['project_key']!r} stayed held by another "
                        f"transaction for {CONFLICT_WAIT_S:.0f} s; nothing written, try again"
                    )
                if not pause:  # the first conflict
                    log.warning(
                        "append_new on %s: %d new transcripts are held by another transaction "
                        "(another writer's, or one left open by a process that stopped, which "
                        "the server aborts after its lifetime: 60 s on MongoDB); waiting up "
                        "to %.0f s",
                        self._connection.hosts,
                        len(keyed),
                        CONFLICT_WAIT_S,
                    )
                pause = min(pause * 2 or 0.05, 2.0)
                await asyncio.sleep(pause)
            try:
                await session.commit_transaction()
            except PyMongoError as exc:
                # A commit that never ran would hold its keys until the server's lifetime
                # limit (60 s on MongoDB), and a driver may not abort after a commit: end the
                # session on the server, which aborts it (nothing, if it was committed).
                with contextlib.suppress(PyMongoError):
                    await client.admin.command({"killSessions": [session.session_id]})
                if exc.has_error_label("TransientTransactionError"):
                    return False  # aborted: nothing was written
                raise
        finally:
            await maybe_await(session.end_session())  # aborts a transaction left open
        return True

    async def _create(
        self, keyed: Sequence[tuple[SessionKey, Block]], facts: ClientFacts
    ) -> list[Block | None]:
        """Create new transcripts step by step: three commands, each an append's own step.

        One ``insert_many`` creates the documents, numbers reserved (``Block.create``), one
        inserts every block's entries (``insert_together``), one ``bulk_write`` settles the
        blocks (``_settle_together``); a block with a refused entry is inserted again and
        settled on its own, as ``append`` does.

        Returns:
            Per block: itself if created (``skipped`` set), ``None`` if it existed already.

        Raises:
            PyMongoError, StoreUnavailableError: The server failed; created blocks are
                fenced and settled with what landed before the error is raised.
        """
        blocks = await Block.create([block for _, block in keyed])
        created = [(key, block) for (key, _), block in zip(keyed, blocks, strict=True) if block]
        try:
            stored = await insert_together([block for _, block in created])
        except (PyMongoError, StoreUnavailableError):
            landed = [await self._settle_failed(key, block) for key, block in created]
            if not all(landed):
                raise
            return blocks  # every entry landed after all, and every block is settled
        whole = [
            (key, block)
            for (key, block), fresh in zip(created, stored, strict=True)
            if len(fresh) == len(block.entries)
        ]
        together = facts.commands and await self._settle_together(whole)
        for (key, block), fresh in zip(created, stored, strict=True):
            # A block with refused entries (uuids another writer stored first, all of them
            # even) is settled on its own: that decides the refused entries' numbers.
            if not together or len(fresh) < len(block.entries):
                await self._summaries.settle_own(key, block, fresh)
        return blocks

    async def _refuse_clear(self, idents: Sequence[dict[str, str]]) -> None:
        """Without encryption settings: refuse to create a transcript of an encrypted project.

        Run before any document is created, and only when transcripts may be created (a
        reservation that found no document, ``append_new``): an append to a transcript that
        exists costs nothing more.

        Raises:
            EncryptionKeyError: A transcript of ``idents`` that does not exist yet belongs to
                a project that holds encrypted transcripts; nothing written.
        """
        sessions = self._collections.sessions
        for project in dict.fromkeys(ident["project_key"] for ident in idents):
            if not await is_encrypted(sessions, project):
                continue
            ours = [ident for ident in idents if ident["project_key"] == project]
            cursor = sessions.find({"$or": ours}, {"_id": 0, "session_id": 1, "subpath": 1})
            existing = {(doc["session_id"], doc["subpath"]) async for doc in cursor}
            for ident in ours:
                if (ident["session_id"], ident["subpath"]) not in existing:
                    raise clear_refused(ident)

    async def _settle_together(self, keyed: Sequence[tuple[SessionKey, Block]]) -> bool:
        """Settle whole blocks with one ``bulk_write`` of their compare-and-sets.

        Returns:
            Whether every one applied (if not, ``settle_own`` finds which are settled).
        """
        updates: list[Any] = []
        for key, block in keyed:
            settlement = await self._summaries.settlement(key, block)
            if settlement is None:
                return False
            updates.append(UpdateOne(*settlement.on_key()))
        if not updates:
            return True
        try:
            result = await self._collections.sessions.bulk_write(updates, ordered=False)
        except PyMongoError:
            return False
        return bool(result.modified_count == len(updates))

    async def _insert(
        self, keyed: Sequence[tuple[SessionKey, Block]], facts: ClientFacts
    ) -> list[list[PreparedEntry] | None]:
        """Insert the blocks, and settle them in the same command where one can carry both.

        Returns:
            Per block: ``None`` if it is settled too, else the entries stored, for
            ``settle_own``.
        """
        work: list[tuple[Block, Settlement]] = []
        if self._bulk_write and facts.bulk_write:
            for key, block in keyed:
                settlement = None if block.chunked else await self._summaries.settlement(key, block)
                if settlement is not None:
                    work.append((block, settlement))
        outcomes: dict[int, bool | None] = {}
        if work:
            try:
                settled = await insert_settling(work)
            except OperationFailure as exc:
                if not _command_not_found(exc):
                    raise
                facts.bulk_write = False  # reported MongoDB 8.0+, yet lacks the command
                settled = [None] * len(work)
            outcomes = {id(block): done for (block, _), done in zip(work, settled, strict=True)}
        stored: list[list[PreparedEntry] | None] = []
        for _, block in keyed:
            done = outcomes.get(id(block))
            if done is None:  # refused entries, or no settling could go along: apart
                stored.append(await block.insert())
            else:
                stored.append(None if done else list(block.entries))
        return stored

    async def _settle_failed(self, key: SessionKey, block: Block) -> bool:
        """Fence ``block`` after a failed insert and settle it; tell whether all entries landed.

        If even this fails, the block stays undecided until the lease is over; then whoever
        settles next fences it.
        """
        try:
            stored = await block.fence()
            await self._summaries.settle_decided(key, block.ident)
        except PyMongoError as exc:
            log.warning(
                "append on %s: seq %d-%d left undecided after a failed insert (it is fenced "
                "once the lease is over): %s",
                self._connection.hosts,
                block.start,
                block.end,
                self._connection.describe(exc),
            )
            return False
        return len(stored) == len(block.entries)


@dataclass
class Block:
    """The sequence numbers ``start..end`` reserved for one batch, and what became of them."""

    collections: Collections
    connection: Connection
    ident: dict[str, str]
    """The transcript's key fields."""
    entries: list[PreparedEntry]
    """The batch; entry ``i`` goes to ``seq`` ``start + i``."""
    token: ObjectId
    """The reservation's signature on the session document."""
    session: dict[str, Any]
    """The session document as the reservation left it."""
    skipped: list[PreparedEntry] = field(default_factory=list)
    """Entries not stored because their ``uuid`` was (set by ``insert``)."""
    ids: dict[int, ObjectId] = field(default_factory=dict)
    """The ``_id`` of each entry's document, by batch index, once ``insert`` sent them."""

    @property
    def end(self) -> int:
        """The block's last sequence number: the counter right after the reservation."""
        return int(self.session["seq"])

    @property
    def start(self) -> int:
        """The block's first sequence number."""
        return self.end - len(self.entries) + 1

    @property
    def chunked(self) -> bool:
        """Whether an entry of the batch is stored in chunks."""
        return any(p.chunks is not None for p in self.entries)

    @classmethod
    async def reserve(
        cls,
        collections: Collections,
        connection: Connection,
        ident: dict[str, str],
        entries: list[PreparedEntry],
        *,
        sealed: bool = False,
        before_creating: Callable[[], Awaitable[None]] | None = None,
    ) -> Block:
        """Reserve ``len(entries)`` sequence numbers with one atomic ``$inc``.

        The transcript's document is created first, once, by a separate upsert that changes no
        counter: some servers answer two racing ``$inc`` upserts with no document after
        applying both, which would leave a reservation nobody knows about. Counts are not
        touched: they change only when numbers are settled. ``pending_since`` keeps the time
        of the oldest reservation not settled yet, for the lease. ``before_creating`` runs
        before the document is created, and may refuse with an error (nothing written).
        ``sealed`` (an encrypted store's batch) marks the document ``ENCRYPTED`` from its
        creation on, and one created in clear from this reservation on.

        Each reservation signs the document with a fresh token. If the reply never arrives
        (or carries a write-concern error) and the document still bears our token, the block
        is ours and still the last one: it is fenced, so whoever settles next settles it at
        once instead of waiting for the lease.
        """
        token = ObjectId()
        mark: Mapping[str, Any] = ENCRYPTED if sealed else {}
        update = {
            "$inc": {"seq": len(entries)},
            "$set": {"reserved_by": token, **mark},
            "$min": {"pending_since": datetime.now(timezone.utc)},
            "$currentDate": {"mtime": True},
        }
        try:
            session = await _reserve_signed(
                collections, connection, ident, update, mark, before_creating
            )
        except (PyMongoError, StoreUnavailableError):
            with contextlib.suppress(PyMongoError):
                doc = await collections.sessions.find_one(ident, {"seq": 1, "reserved_by": 1})
                if doc is not None and doc.get("reserved_by") == token:
                    await cls(collections, connection, ident, entries, token, doc).fence()
            raise
        return cls(collections, connection, ident, entries, token, session)

    def documents(self) -> list[dict[str, Any]]:
        """The batch's entry documents; each keeps its ``_id`` if it was sent before."""
        docs = []
        for p in self.entries:
            doc = {
                "_id": self.ids.setdefault(p.index, ObjectId()),
                **self.ident,
                "seq": self.start + p.index,
                "dedupe": p.dedupe,
                **p.content,
            }
            if p.chunks is not None:
                doc["chunked"] = len(p.chunks)
                doc["size"] = p.size  # the stub is smaller than the entry the counts hold
            docs.append(doc)
        return docs

    @classmethod
    def new(
        cls,
        collections: Collections,
        connection: Connection,
        ident: dict[str, str],
        entries: list[PreparedEntry],
        mtime: datetime,
        *,
        sealed: bool = False,
    ) -> Block:
        """The block of a transcript not created yet: ``entries`` on numbers ``1..n``.

        Its document (``session``, not stored yet) is what a reservation leaves: numbers
        reserved, none settled, ``pending_since`` for the lease; ``mtime`` is its last write;
        marked ``ENCRYPTED`` if ``sealed`` (an encrypted store's).
        """
        token = ObjectId()
        now = datetime.now(timezone.utc)
        session = {
            **ident,
            "seq": len(entries),
            "settled": 0,
            "summary_version": 0,
            "count": 0,
            "bytes": 0,
            "reserved_by": token,
            "pending_since": now,
            "created": now,
            "mtime": mtime,
            **(ENCRYPTED if sealed else {}),
        }
        return cls(collections, connection, ident, entries, token, session)

    @staticmethod
    async def create(blocks: Sequence[Block]) -> list[Block | None]:
        """Create the documents of new transcripts' blocks (``Block.new``), reserved, not settled.

        One unordered ``insert_many``: a transcript whose document exists already fails on
        ``session_key`` and is left as it is (``None``).

        Raises:
            PyMongoError: The insert failed as a whole; whatever it created waits for the
                lease, as a reservation whose writer died does.
        """
        existing: set[int] = set()
        if blocks:
            try:
                await blocks[0].collections.sessions.insert_many(
                    [block.session for block in blocks], ordered=False
                )
            except BulkWriteError as exc:
                for error in exc.details.get("writeErrors", []):
                    if error.get("code") != _DUPLICATE_KEY:
                        raise
                    existing.add(error["index"])
        return [None if n in existing else block for n, block in enumerate(blocks)]

    async def insert(self) -> list[PreparedEntry]:
        """Insert the batch unordered; return the entries stored (duplicates are skipped)."""
        docs = self.documents()
        chunked = [p for p in self.entries if p.chunks is not None]
        if chunked:
            await self._insert_chunks(chunked)
        skipped: set[int] = set()
        try:
            await self.collections.entries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            skipped = await self._classify_write_errors(exc)
        self.skipped = [p for p in self.entries if p.index in skipped]
        await self._drop_chunks_of(self.skipped)
        return [p for p in self.entries if p.index not in skipped]

    async def fence(self) -> list[PreparedEntry]:
        """After an insert of unknown outcome, decide every number of the block for good.

        A hole goes on each number where none of our entries landed, so that an insert still
        on its way (a blocked connection, a driver retry) fails on the unique ``entry_seq``
        index instead of landing after the counts were settled. A number where a document
        landed first keeps it.

        Returns:
            The entries of ours that are stored.
        """
        holes = [hole(self.ident, self.start + p.index) for p in self.entries]
        with contextlib.suppress(BulkWriteError):  # numbers holding a document already
            await self.collections.entries.insert_many(holes, ordered=False)
        landed = await self._landed_indexes()
        self.skipped = [p for p in self.entries if p.index not in landed]
        await self._drop_chunks_of(self.skipped)
        return [p for p in self.entries if p.index in landed]

    async def _drop_chunks_of(self, entries: list[PreparedEntry]) -> None:
        """Entries not stored (skipped, or fenced out) must not leave their chunks behind."""
        orphans = [self.start + p.index for p in entries if p.chunks is not None]
        if orphans:
            await self.collections.chunks.delete_many({**self.ident, "seq": {"$in": orphans}})

    async def _insert_chunks(self, chunked: list[PreparedEntry]) -> None:
        for p in chunked:
            assert p.chunks is not None
            await self.collections.chunks.insert_many(
                [
                    {**self.ident, "seq": self.start + p.index, "part": n, **content}
                    for n, content in enumerate(p.chunks)
                ],
                ordered=True,
            )

    async def _classify_write_errors(self, exc: BulkWriteError) -> set[int]:
        """Sort an insert's write errors: return the batch indexes skipped as duplicates.

        A duplicate ``uuid`` is the idempotent path. A duplicate ``_id``, or a duplicate
        ``uuid`` or ``seq`` held by our own document at our own ``seq``, is an insert of ours
        that landed before (a driver retry, or the batch sent again): stored, not skipped. A
        write-concern error is logged (the entries are stored). A ``seq`` held by another
        document means our numbers are taken: the append outlived the lease and was fenced, or
        the counter fell behind its entries (it is repaired); ``StoreUnavailableError`` is
        raised. Anything else is raised as is.
        """
        self.log_write_concern(exc.details.get("writeConcernErrors", []))
        duplicates: set[int] = set()
        taken: set[int] = set()
        for error in exc.details.get("writeErrors", []):
            violated = _violated_index(error)
            if violated == "dedupe":
                duplicates.add(error["index"])
            elif violated == "seq":
                taken.add(error["index"])
            elif violated != "_id":
                raise exc
        if not duplicates and not taken:
            return set()
        landed = await self._landed_indexes()
        if taken - landed:
            await self._repair_counter()
            raise StoreUnavailableError(
                f"append on {self.connection.hosts}: the sequence numbers reserved for "
                f"{self.ident!r} are taken: the append outlived the lease and was fenced, "
                "or the counter was behind its stored entries (restored or edited by "
                "hand?) and is repaired; append again"
            ) from None
        return {index for index in duplicates if index not in landed}

    def log_write_concern(self, errors: Sequence[Any] | None) -> None:
        """Errors as a bulk write reports them (documents) or a client bulk write (exceptions)."""
        for concern in errors or []:
            # The entries are on the primary; failing would make the SDK retry and duplicate
            # entries without uuid. Say so loudly instead: durability is below what was asked.
            log.warning(
                "append on %s: entries stored, but write concern not satisfied: %s",
                self.connection.hosts,
                concern.get("errmsg", concern) if isinstance(concern, Mapping) else concern,
            )

    async def _landed_indexes(self) -> set[int]:
        """The batch indexes whose own documents are stored at this block's numbers.

        One range scan of the ``entry_seq`` index, O(batch) whatever the session's length.
        """
        stored = self.collections.entries.find(
            {**self.ident, "seq": {"$gte": self.start, "$lte": self.end}}, {"_id": 1, "seq": 1}
        )
        return {
            doc["seq"] - self.start
            async for doc in stored
            if doc["_id"] == self.ids.get(doc["seq"] - self.start)
        }

    async def _repair_counter(self) -> None:
        highest = await self.collections.entries.find_one(
            self.ident, {"seq": 1}, sort=[("seq", DESCENDING)]
        )
        if highest is not None:
            await self.collections.sessions.update_one(
                self.ident, {"$max": {"seq": highest["seq"]}}
            )


async def _reserve_signed(
    collections: Collections,
    connection: Connection,
    ident: dict[str, str],
    update: dict[str, Any],
    mark: Mapping[str, Any],
    before_creating: Callable[[], Awaitable[None]] | None,
) -> dict[str, Any]:
    for _ in range(_RESERVE_ATTEMPTS):
        doc: dict[str, Any] | None = await collections.sessions.find_one_and_update(
            ident, update, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            return doc
        if before_creating is not None:
            await before_creating()
        # Another writer may create it first: that is what we wanted.
        with contextlib.suppress(DuplicateKeyError):
            now = datetime.now(timezone.utc)
            await collections.sessions.update_one(
                ident,
                {
                    "$setOnInsert": {
                        "seq": 0,
                        "count": 0,
                        "bytes": 0,
                        "settled": 0,
                        "summary_version": 0,
                        "created": now,
                        "mtime": now,
                        **mark,  # marked from its creation: never found unmarked in between
                    }
                },
                upsert=True,
            )
    raise StoreUnavailableError(
        f"append on {connection.hosts}: could not reserve sequence numbers for {ident!r}"
    )


async def insert_settling(work: Sequence[tuple[Block, Settlement]]) -> list[bool | None]:
    """Insert each block's batch and then settle it, all in one ordered ``bulkWrite`` command.

    Ordered, the server applies a block's settling only once every entry before it is
    inserted, and applies nothing after a refused entry: the same writes under the same
    conditions as ``Block.insert`` followed by the settling compare-and-set, in one round trip.

    Returns:
        Per block: ``True``, stored and settled (every settling applied). ``False``, stored,
        but a settling's condition no longer held (``settle_own`` takes over). ``None``, not
        known to be stored: an entry at or before it was refused (a duplicate ``uuid``, most
        likely); ``Block.insert`` sends its batch again and sorts it out.

    Raises:
        PyMongoError: The command failed as a whole, its outcome unknown.
    """
    models: list[Any] = []
    settlings: list[int] = []
    for block, settlement in work:
        entries = block.collections.entries.full_name
        models += [InsertOne(doc, namespace=entries) for doc in block.documents()]
        sessions = block.collections.sessions.full_name
        models.append(UpdateOne(*settlement.on_key(), namespace=sessions))
        settlings.append(len(models) - 1)
    client = work[0][0].collections.database.client
    try:
        result = await client.bulk_write(models, ordered=True)
        refused = len(models)
    except ClientBulkWriteException as exc:
        if exc.error is not None or exc.partial_result is None:
            raise
        # The details hold documents, as a server sends them (whatever the annotations say).
        errors = exc.details.get("writeErrors", [])
        refused = min((error["idx"] for error in errors), default=len(models))
        work[0][0].log_write_concern(exc.details.get("writeConcernErrors", []))
        result = exc.partial_result
    done = [index < refused for index in settlings]
    all_settled = result.modified_count == sum(done)  # on the key, every settling matches
    return [all_settled if stored else None for stored in done]


async def insert_together(blocks: Sequence[Block]) -> list[list[PreparedEntry]]:
    """Insert several blocks' batches with one unordered ``insert_many``.

    A block with a refused entry (a duplicate ``uuid``, most likely), or with an entry stored
    in chunks, is inserted on its own by ``Block.insert``, which sorts out what was stored.

    Returns:
        Per block, the entries stored.

    Raises:
        PyMongoError: The insert failed as a whole, its outcome unknown.
    """
    documents: list[dict[str, Any]] = []
    owners: list[int] = []
    apart = {n for n, block in enumerate(blocks) if block.chunked}
    for n, block in enumerate(blocks):
        if n not in apart:
            batch = block.documents()
            documents += batch
            owners += [n] * len(batch)
    if documents:
        try:
            await blocks[0].collections.entries.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            blocks[0].log_write_concern(exc.details.get("writeConcernErrors", []))
            apart |= {owners[error["index"]] for error in exc.details.get("writeErrors", [])}
    return [
        await block.insert() if n in apart else list(block.entries)
        for n, block in enumerate(blocks)
    ]


CONFLICT_WAIT_S = 120.0
"""How long ``append_new`` tries again while another transaction holds one of its keys: more
than MongoDB's transaction lifetime (60 s), after which the server aborts one left open."""

TRANSACTION_BYTES = 16 * 1024 * 1024
"""The most entry bytes ``append_new`` puts in one transaction (a transcript bigger than that
goes alone): a transaction holds its writes in the server's cache until it commits, and must
commit within the server's lifetime limit (60 s on MongoDB)."""


def _parts(
    keyed: Sequence[tuple[SessionKey, Block]],
) -> list[Sequence[tuple[SessionKey, Block]]]:
    """``keyed`` in order, cut into parts of at most ``TRANSACTION_BYTES`` of entries each."""
    parts: list[Sequence[tuple[SessionKey, Block]]] = []
    part: list[tuple[SessionKey, Block]] = []
    size = 0
    for key, block in keyed:
        bytes_ = sum(entry.size for entry in block.entries)
        if part and size + bytes_ > TRANSACTION_BYTES:
            parts.append(part)
            part, size = [], 0
        part.append((key, block))
        size += bytes_
    return [*parts, part] if part else parts


def _new_transcripts(
    transcripts: Sequence[NewTranscript | tuple[SessionKey, list[SessionStoreEntry]]],
) -> list[NewTranscript]:
    """The items of an ``append_new`` call, each checked to be a transcript's parts.

    Raises:
        InvalidEntryError: Not a list of ``NewTranscript`` items or ``(key, entries)`` pairs.
    """
    shape = "append_new takes a list of NewTranscript items or (key, entries) pairs"
    if not isinstance(transcripts, (list, tuple)):
        raise InvalidEntryError(f"{shape}, got {type(transcripts).__name__}")
    items = []
    for n, item in enumerate(transcripts):
        if not isinstance(item, (list, tuple)) or not 2 <= len(item) <= 3:
            raise InvalidEntryError(f"{shape}; item {n} is a {type(item).__name__}")
        items.append(NewTranscript(*item))
    return items


_COMMAND_NOT_FOUND = 59
_DUPLICATE_KEY = 11000
_ILLEGAL_OPERATION = 20
_WRITE_CONFLICT = 112
_NOT_SUPPORTED_IN_TRANSACTION = 263


def _write_conflict(exc: PyMongoError) -> bool:
    """Whether a write in a transaction met another transaction's write to the same key."""
    if not isinstance(exc, OperationFailure):
        return False
    errors = exc.details.get("writeErrors", []) if isinstance(exc, BulkWriteError) else []
    return exc.code == _WRITE_CONFLICT or any(e.get("code") == _WRITE_CONFLICT for e in errors)


def _no_transactions(exc: PyMongoError) -> bool:
    """Whether the server refused a transaction as such (a standalone server, say)."""
    return isinstance(exc, OperationFailure) and exc.code in (
        _ILLEGAL_OPERATION,
        _NOT_SUPPORTED_IN_TRANSACTION,
    )


def _command_not_found(exc: OperationFailure) -> bool:
    """Whether the server refused a command it does not know (a bulk write's top-level error)."""
    cause = exc.error if isinstance(exc, ClientBulkWriteException) else exc
    return isinstance(cause, OperationFailure) and cause.code == _COMMAND_NOT_FOUND


_INDEX_NAME = re.compile(r"index: (\S+)")


def _violated_index(error: Mapping[str, Any]) -> str:
    """Name which unique key a duplicate-key write error hit: dedupe, seq, _id or other."""
    if error.get("code") != 11000:
        return "other"
    fields = list(error.get("keyPattern") or {})
    if not fields:
        match = _INDEX_NAME.search(str(error.get("errmsg", "")))
        name = match.group(1) if match else str(error.get("errmsg", ""))
        fields = [f for f in ("dedupe", "seq", "_id") if f in name]
    for field_name in ("dedupe", "seq", "_id"):
        if field_name in fields:
            return field_name
    return "other"
