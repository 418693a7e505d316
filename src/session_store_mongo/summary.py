"""A main transcript's summary, folded inside ``append`` and serialized across processes.

Usage::

    from session_store_mongo.summary import Summaries, summary_view

    summaries = Summaries(collections, connection, lease_ms=120_000)
    reported = await summaries.settle(key, block, fresh)   # after an append's insert
    doc = await summaries.catch_up(key, ident, doc, fold)  # before a summary is read
    summary = summary_view(doc, key)                        # what list_session_summaries shows

Three positions on a transcript's ``sessions`` document, always ``summary_seq <= landed <= seq``:

- ``seq``: the last sequence number reserved. Every append reserves a block of numbers first.
- ``landed``: how many reserved numbers have been reported by their writer as done (inserted,
  skipped as duplicates, or failed and released). ``landed == seq`` means no writer is in flight,
  so the stored entries up to ``seq`` are all there will ever be.
- ``summary_seq``: every entry with a lower or equal ``seq`` is folded into ``summary``.

A writer whose block directly follows ``summary_seq`` folds its own fresh entries and reports
its block landed in one compare-and-set on ``summary_version``. Any other writer reports its
landing; whoever then sees ``landed >= seq`` catches the summary up from the stored entries.
A summary stuck behind a reservation for a whole lease (``lease_ms``) takes that writer as
dead and folds past it. While behind, the summary reports the older ``mtime`` at which it was
last written, so the SDK's staleness check loads the transcript instead of trusting it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from session_store_protocol.summaries import Fold, optional_fold
from session_store_protocol.types import SessionKey, SessionStoreEntry, SessionSummaryEntry

from .client import Connection
from .codec import decode_entry, encode_entry, epoch_ms
from .layout import Collections
from .reader import read_entries

if TYPE_CHECKING:
    from .append import Block

__all__ = ["DEFAULT_LEASE_MS", "Summaries", "summary_view"]

log = logging.getLogger("session_store_mongo")

DEFAULT_LEASE_MS = 120_000
"""How long a summary waits behind a reservation whose writer never reported before it takes
that writer as dead (crashed between reserving and reporting) and folds past it."""
_ATTEMPTS = 16
"""Compare-and-set attempts before a writer leaves the summary to the next read or write."""


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
    """Folds, compares-and-sets and catches up the summaries of one store's transcripts."""

    def __init__(self, collections: Collections, connection: Connection, *, lease_ms: int) -> None:
        self._collections = collections
        self._sessions = collections.sessions
        self._connection = connection
        self._lease_ms = lease_ms

    async def settle(self, key: SessionKey, block: Block, fresh: list[SessionStoreEntry]) -> bool:
        """Report ``block`` landed and fold ``fresh`` (the entries it stored) into the summary.

        Never raises a driver error: the entries are stored, and failing the append would make
        the SDK retry it and duplicate entries without uuid. The summary catches up on a later
        read or write.

        Returns:
            Whether the block was reported landed; if not, the caller releases it.
        """
        fold = optional_fold()
        ident = block.ident
        landing = block.landing()
        reported = False
        try:
            if fold is not None and block.session.get("summary_seq", 0) == block.start - 1:
                summary = fold(summary_view(block.session, key), key, fresh)
                doc = await self._compare_and_set(ident, block.session, summary, block.end, landing)
                if doc is not None:  # landed and folded in one write: the common case
                    reported = True
                    await self.catch_up(key, ident, doc, fold)
                    return reported
            doc = await self._sessions.find_one_and_update(
                ident, landing, return_document=ReturnDocument.AFTER
            )
            reported = True
            if fold is None or doc is None:
                return reported
            if fresh and doc.get("summary_seq", 0) >= block.start:
                # Overtaken while in flight (only after a reservation was taken as abandoned):
                # refold everything, so no entry is ever silently missing from the summary.
                await self.catch_up(key, ident, doc, fold, refold=True)
                return reported
            doc = await self._fold_own(key, block, doc, fold, fresh)
            await self.catch_up(key, ident, doc, fold)
        except PyMongoError as exc:
            log.warning(
                "append on %s: entries stored, summary deferred: %s",
                self._connection.hosts,
                self._connection.describe(exc),
            )
        return reported

    async def _compare_and_set(
        self,
        ident: dict[str, str],
        doc: dict[str, Any],
        summary: SessionSummaryEntry,
        upto: int,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Write ``summary`` as folded through ``upto`` if nobody wrote one since ``doc``."""
        update: dict[str, Any] = {key: dict(value) for key, value in (extra or {}).items()}
        stored, escaped = encode_entry(summary["data"], "summary")
        update.setdefault("$set", {}).update(
            {"summary": stored, "summary_escaped": escaped, "summary_seq": upto}
        )
        update.setdefault("$inc", {})["summary_version"] = 1
        update["$currentDate"] = {"summary_at": True}
        filter_ = {**ident, "summary_version": doc.get("summary_version", 0)}
        if "summary_version" not in doc:
            filter_["summary_version"] = {"$exists": False}
        result: dict[str, Any] | None = await self._sessions.find_one_and_update(
            filter_, update, return_document=ReturnDocument.AFTER
        )
        return result

    async def _fold_own(
        self,
        key: SessionKey,
        block: Block,
        doc: dict[str, Any],
        fold: Fold,
        fresh: list[SessionStoreEntry],
    ) -> dict[str, Any]:
        """Fold this writer's block while it is next in line; return the latest session doc."""
        for _ in range(_ATTEMPTS):
            if doc.get("summary_seq", 0) != block.start - 1:
                return doc
            summary = fold(summary_view(doc, key), key, fresh)
            written = await self._compare_and_set(block.ident, doc, summary, block.end)
            if written is not None:
                return written
            doc = await self._sessions.find_one(block.ident) or doc
        return doc

    async def catch_up(
        self,
        key: SessionKey,
        ident: dict[str, str],
        doc: dict[str, Any],
        fold: Fold,
        *,
        refold: bool = False,
    ) -> dict[str, Any]:
        """Fold stored entries the summary lacks, once no reservation is in flight.

        With ``refold``, rebuild from the first entry instead of from ``summary_seq``.

        Returns:
            The latest session document this step saw or wrote.
        """
        for _ in range(_ATTEMPTS):
            reserved, landed = int(doc.get("seq", 0)), int(doc.get("landed", 0))
            folded_upto = 0 if refold else int(doc.get("summary_seq", 0))
            # A summary stuck behind a reservation for a whole lease: its writer died.
            last_progress = doc.get("summary_at", doc.get("created"))
            abandoned = epoch_ms(last_progress) < time.time() * 1000 - self._lease_ms
            if folded_upto >= reserved or not (refold or landed >= reserved or abandoned):
                return doc
            previous = None if refold else summary_view(doc, key)
            pending = await read_entries(self._collections, ident, after=folded_upto, upto=reserved)
            summary = fold(previous, key, pending)
            repair = {"$max": {"landed": reserved}} if abandoned else None
            written = await self._compare_and_set(ident, doc, summary, reserved, repair)
            if written is not None:
                return written
            latest = await self._sessions.find_one(ident)
            if latest is None:  # deleted meanwhile
                return doc
            doc = latest
        return doc
