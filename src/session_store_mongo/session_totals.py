"""Per-session totals over the sessions collection: store statistics and pruning idle sessions.

Usage (the store's ``stats()`` and ``prune_inactive()`` call these)::

    from session_store_mongo.session_totals import idle_sessions, prune, store_stats

    totals = await store_stats(collections, largest=10)
    idle = await idle_sessions(collections.sessions, timedelta(days=30))
    await prune(collections, idle)

Both read one aggregation over the ``sessions`` collection: ``SESSION_TOTALS`` groups a
session's transcript documents (main and subagents) into one row. Statistics also read the
entries stored past a transcript's ``settled`` (writers in flight, as a rule none), so they count
what ``size()`` counts. ``delete`` keeps an
empty document (``count`` 0) per deleted transcript, so a sequence counter never restarts below a
racing writer; such a document is no transcript: statistics leave it out, and pruning removes it
(once idle as long) without reporting it as a session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from session_store_protocol.errors import InvalidStoreOptionsError
from session_store_protocol.types import SessionListSubkeysKey
from session_store_protocol.validation import validate_session_key

from .codec import epoch_ms
from .driver import maybe_await
from .layout import Collections
from .reader import read_slots
from .sealer import Sealer

__all__ = [
    "EVERY_SESSION",
    "PRUNE_BATCH",
    "SESSION_TOTALS",
    "IdleSession",
    "SessionTotals",
    "StoreStats",
    "idle_cutoff",
    "idle_sessions",
    "prune",
    "store_stats",
]

SESSION_TOTALS: Mapping[str, Any] = {
    "$group": {
        "_id": {"project_key": "$project_key", "session_id": "$session_id"},
        "transcripts": {"$sum": {"$cond": [{"$gt": ["$count", 0]}, 1, 0]}},
        "entries": {"$sum": "$count"},
        "bytes": {"$sum": "$bytes"},
        "mtime": {"$max": "$mtime"},
        "forgotten": {"$max": {"$cond": [{"$ifNull": ["$forgotten", False]}, 1, 0]}},
    }
}
"""The ``$group`` stage: one row per session from its transcripts' documents."""
EVERY_SESSION: Mapping[str, Any] = {"$match": {"project_key": {"$gte": ""}}}
"""Every transcript document (project keys are non-empty strings), through ``session_key``.

A range on the index's first field: a store-wide read is an index scan on every planner,
never a collection scan."""
PRUNE_BATCH = 1000
"""Sessions selected per filter: pruning costs three ``delete_many`` per this many sessions."""


@dataclass(frozen=True)
class SessionTotals:
    """One session's transcripts (main and subagents), entries, bytes and last write."""

    project_key: str
    session_id: str
    transcripts: int
    entries: int
    bytes: int
    mtime: int
    """The latest write to any of its transcripts, epoch milliseconds."""


@dataclass(frozen=True)
class StoreStats:
    """Totals over a store's database, for operators (``session-store-mongo stats``)."""

    sessions: int
    transcripts: int
    entries: int
    bytes: int
    largest: list[SessionTotals]
    """The largest sessions by bytes, largest first."""
    forgotten: int = 0
    """Sessions (counted above too) whose data key ``forget`` destroyed: unreadable, until
    deleted or pruned."""


@dataclass(frozen=True)
class IdleSession:
    """A session idle past a cutoff; ``transcripts`` 0 means only deleted ones remain."""

    key: SessionListSubkeysKey
    transcripts: int


async def store_stats(
    collections: Collections, *, largest: int, sealer: Sealer | None = None
) -> StoreStats:
    """Count the sessions, transcripts, entries and bytes stored; the largest first.

    Entries stored but not settled yet (a writer in flight, or one that died before settling)
    are counted as ``size()`` counts them: read from the entries past ``settled``.
    """
    cursor = await maybe_await(
        collections.sessions.aggregate(
            [EVERY_SESSION, {"$match": {"count": {"$gt": 0}}}, SESSION_TOTALS]
        )
    )
    rows = {_session_of(doc["_id"]): dict(doc) async for doc in cursor}
    await _add_unsettled(collections, rows, sealer)
    ordered = sorted(
        (row for row in rows.values() if row["entries"] > 0),
        key=lambda row: (-row["bytes"], _session_of(row["_id"])),
    )
    return StoreStats(
        sessions=len(ordered),
        transcripts=sum(row["transcripts"] for row in ordered),
        entries=sum(row["entries"] for row in ordered),
        bytes=sum(row["bytes"] for row in ordered),
        largest=[_session_totals(row) for row in ordered[: max(largest, 0)]],
        forgotten=sum(row["forgotten"] for row in ordered),
    )


async def _add_unsettled(
    collections: Collections, rows: dict[tuple[str, str], Any], sealer: Sealer | None
) -> None:
    """Add to ``rows`` the entries stored past each transcript's ``settled`` (rare: in flight).

    Only transcripts with a reservation not settled carry ``pending_since``; a forgotten one's
    entries cannot be opened, and it has none to count.
    """
    cursor = collections.sessions.find(
        {
            **EVERY_SESSION["$match"],
            "pending_since": {"$exists": True},
            "forgotten": {"$exists": False},
        }
    )
    async for doc in cursor:
        ident = {name: doc[name] for name in ("project_key", "session_id", "subpath")}
        settled, reserved = int(doc.get("settled", 0)), int(doc.get("seq", 0))
        slots = await read_slots(collections, ident, after=settled, upto=reserved, sealer=sealer)
        stored = [slot for slot in slots if slot.entry is not None]
        if not stored:
            continue
        session = (doc["project_key"], doc["session_id"])
        row = rows.setdefault(
            session,
            {"_id": dict(zip(("project_key", "session_id"), session, strict=True)),
             "transcripts": 0, "entries": 0, "bytes": 0, "mtime": doc["mtime"], "forgotten": 0},
        )  # fmt: skip
        row["transcripts"] += 0 if int(doc.get("count", 0)) > 0 else 1
        row["entries"] += len(stored)
        row["bytes"] += sum(slot.size for slot in stored)
        row["mtime"] = max(row["mtime"], doc["mtime"])


def _session_of(group_id: Mapping[str, str]) -> tuple[str, str]:
    return group_id["project_key"], group_id["session_id"]


def _session_totals(row: Mapping[str, Any]) -> SessionTotals:
    return SessionTotals(
        project_key=row["_id"]["project_key"],
        session_id=row["_id"]["session_id"],
        transcripts=row["transcripts"],
        entries=row["entries"],
        bytes=row["bytes"],
        mtime=epoch_ms(row["mtime"]),
    )


def idle_cutoff(older_than: timedelta | float) -> datetime:
    """The time before which a session's last write makes it idle.

    Raises:
        InvalidStoreOptionsError: ``older_than`` is negative, not a finite number, or reaches
            back before the year 1.
    """
    try:
        idle = older_than if isinstance(older_than, timedelta) else timedelta(seconds=older_than)
        if idle < timedelta(0):
            raise ValueError(idle)
        return datetime.now(timezone.utc) - idle
    except (TypeError, ValueError, OverflowError):
        raise InvalidStoreOptionsError(
            "older_than must be a non-negative duration that reaches back no further than "
            f"the year 1, not {older_than!r}"
        ) from None


async def idle_sessions(
    sessions: Any,
    older_than: timedelta | float,
    *,
    only: Sequence[SessionListSubkeysKey] | None = None,
) -> list[IdleSession]:
    """The sessions whose last write is older than ``older_than``, deleted ones included.

    Args:
        sessions: The store's sessions collection.
        older_than: Idle time, as a ``timedelta`` or in seconds.
        only: Look at these sessions alone.

    Raises:
        InvalidStoreOptionsError: A bad ``older_than`` (see ``idle_cutoff``).
        InvalidKeyError: A malformed session in ``only``.
    """
    cutoff = idle_cutoff(older_than)
    selections: list[Mapping[str, Any]] = [EVERY_SESSION]
    if only is not None:
        chosen = [validate_session_key(session) for session in only]
        # One aggregation per project's batch: an index range each, where "$or" is not.
        selections = [{"$match": batch} for batch in _by_project(chosen)]
    idle = []
    for selection in selections:
        pipeline = [selection, SESSION_TOTALS, {"$match": {"mtime": {"$lt": cutoff}}}]
        cursor = await maybe_await(sessions.aggregate(pipeline))
        idle += [IdleSession(doc["_id"], doc["transcripts"]) async for doc in cursor]
    return idle


async def prune(collections: Collections, idle: Sequence[IdleSession]) -> None:
    """Delete the entries, chunks and transcript documents of ``idle``, in batches."""
    for batch in _by_project([session.key for session in idle]):
        for collection in (collections.entries, collections.chunks, collections.sessions):
            await collection.delete_many(batch)


def _by_project(sessions: Sequence[SessionListSubkeysKey]) -> list[dict[str, Any]]:
    """Filters selecting ``sessions``: one per project and up to ``PRUNE_BATCH`` sessions."""
    ids: dict[str, list[str]] = {}
    for session in sessions:
        ids.setdefault(session["project_key"], []).append(session["session_id"])
    return [
        {"project_key": project, "session_id": {"$in": chosen[start : start + PRUNE_BATCH]}}
        for project, chosen in ids.items()
        for start in range(0, len(chosen), PRUNE_BATCH)
    ]
