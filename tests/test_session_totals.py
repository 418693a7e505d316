"""Store statistics and pruning: deleted transcripts, batching, confirmed sets, bad durations."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent

from session_store_mongo import MongoSessionStore, SessionTotals, StoreStats
from session_store_protocol import SessionKey
from session_store_protocol.errors import InvalidStoreOptionsError
from tests.support import store_collection, unique_name

pytestmark = pytest.mark.live

STORED_TIME_RESOLUTION = 0.002
"""Seconds to wait so that "idle for 0 s" covers a write just made (times are stored in ms)."""


class DeleteCommands(CommandListener):
    """Counts the ``delete`` commands a client sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: CommandStartedEvent) -> None:
        self.count += event.command_name == "delete"

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


@pytest.fixture
async def deletes(mongo_url: str) -> AsyncIterator[tuple[MongoSessionStore, DeleteCommands]]:
    """A store on a client of its own whose ``delete`` commands are counted."""
    listener = DeleteCommands()
    database = unique_name("totals")
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, event_listeners=[listener])
    store = MongoSessionStore(client=client, database=database)
    yield store, listener
    await client.drop_database(database)
    await client.close()


def key(session: str, subpath: str | None = None, project: str = "p") -> SessionKey:
    result: SessionKey = {"project_key": project, "session_id": session}
    if subpath is not None:
        result["subpath"] = subpath
    return result


def entries(count: int, prefix: str = "e") -> list[Any]:
    return [{"type": "user", "uuid": f"{prefix}{i}", "text": "x" * 10} for i in range(count)]


async def test_stats_leave_out_deleted_sessions(live_store: MongoSessionStore) -> None:
    """A deleted session is neither counted nor listed; a deleted subagent is no transcript."""
    await live_store.append(key("kept"), entries(2))
    await live_store.append(key("kept", "subagents/agent-1"), entries(1))
    await live_store.append(key("kept", "subagents/agent-2"), entries(1))
    await live_store.append(key("gone"), entries(5))
    await live_store.append(key("gone", "subagents/agent-3"), entries(1))
    await live_store.delete(key("gone"))
    await live_store.delete(key("kept", "subagents/agent-2"))
    stats = await live_store.stats()
    assert (stats.sessions, stats.transcripts, stats.entries) == (1, 2, 3)
    [row] = stats.largest
    assert isinstance(row, SessionTotals)
    assert (row.project_key, row.session_id, row.transcripts, row.entries) == ("p", "kept", 2, 3)
    assert row.bytes == stats.bytes > 0


async def test_stats_largest_first_and_limited(live_store: MongoSessionStore) -> None:
    """``largest`` lists that many sessions by bytes, largest first; 0 lists none."""
    for size, session in ((1, "small"), (3, "middle"), (5, "large")):
        await live_store.append(key(session), entries(size))
    assert [row.session_id for row in (await live_store.stats(largest=2)).largest] == [
        "large",
        "middle",
    ]
    assert (await live_store.stats(largest=0)).largest == []


async def test_prune_skips_deleted_sessions_and_removes_their_leftovers(
    live_store: MongoSessionStore,
) -> None:
    """Pruning never reports a deleted session, and removes the empty documents it left."""
    await live_store.append(key("alive"), entries(1))
    await live_store.append(key("gone"), entries(1))
    await live_store.delete(key("gone"))
    await asyncio.sleep(STORED_TIME_RESOLUTION)
    assert await live_store.prune_inactive(0, dry_run=True) == [key("alive")]
    assert await live_store.prune_inactive(0) == [key("alive")]
    assert await live_store.prune_inactive(0, dry_run=True) == []
    assert await live_store.stats() == StoreStats(0, 0, 0, 0, [])


async def test_prune_deletes_in_batches(
    deletes: tuple[MongoSessionStore, DeleteCommands],
) -> None:
    """Pruning 30 sessions with subagents costs three delete commands, not three per session."""
    store, listener = deletes
    for index in range(30):
        await store.append(key(f"s{index}"), entries(2, f"s{index}-"))
        await store.append(key(f"s{index}", "subagents/agent-1"), entries(1, f"a{index}-"))
    listener.count = 0
    await asyncio.sleep(STORED_TIME_RESOLUTION)
    pruned = await store.prune_inactive(0)
    assert len(pruned) == 30
    assert listener.count == 3
    assert await store.list_sessions("p") == []
    assert await store.load(key("s7", "subagents/agent-1")) is None


async def test_prune_only_deletes_the_confirmed_sessions_still_idle(
    live_store: MongoSessionStore,
) -> None:
    """With ``only``, a confirmed session written to since is kept, an unconfirmed one too."""
    for session in ("confirmed", "written-since", "not-confirmed"):
        await live_store.append(key(session), entries(1, session))
    await asyncio.sleep(0.6)
    listed = await live_store.prune_inactive(0.5, dry_run=True)
    assert len(listed) == 3
    await live_store.append(key("written-since"), entries(1, "later"))
    confirmed = [key("confirmed"), key("written-since")]
    assert await live_store.prune_inactive(0.5, only=confirmed) == [key("confirmed")]
    remaining = {s["session_id"] for s in await live_store.list_sessions("p")}
    assert remaining == {"written-since", "not-confirmed"}
    assert await live_store.prune_inactive(0.5, only=[]) == []


@pytest.mark.parametrize(
    "older_than",
    [-1, timedelta(seconds=-1), math.nan, math.inf, 1e300, timedelta.max, "30d", None],
)
async def test_prune_refuses_bad_durations(live_store: MongoSessionStore, older_than: Any) -> None:
    """Negative, not finite, beyond the calendar or not a duration: InvalidStoreOptionsError."""
    await live_store.append(key("kept"), entries(1))
    with pytest.raises(InvalidStoreOptionsError, match="older_than"):
        await live_store.prune_inactive(older_than)
    assert await live_store.size(key("kept")) == 1


async def test_stats_count_what_size_counts_before_settling(
    live_store: MongoSessionStore, live_client: Any
) -> None:
    """Entries stored but not settled are in ``stats`` as in ``size()``, as once settled.

    One session's writer was killed before settling; another's holds numbers open.
    """
    await live_store.append(key("held"), entries(1))
    await live_store.append(key("killed"), entries(3))
    await live_store.append(key("killed", "subagents/agent-a"), entries(2))
    settled = await live_store.stats()
    sessions = store_collection(live_client, live_store, "sessions")
    unsettle = {"$set": {"settled": 0, "count": 0, "bytes": 0, "pending_since": datetime.now()}}
    assert (await sessions.update_many({"session_id": "killed"}, unsettle)).modified_count == 2
    await sessions.update_one({"session_id": "held"}, {"$inc": {"seq": 5}})  # a writer died
    await live_store.append(key("held"), entries(2, "late"))  # stored past the open numbers
    assert [await live_store.size(k) for k in (key("killed"), key("held"))] == [3, 3]
    stats = await live_store.stats()
    assert (stats.sessions, stats.transcripts, stats.entries) == (2, 3, 8)
    assert stats.bytes > settled.bytes
    killed = next(s for s in stats.largest if s.session_id == "killed")
    assert killed == next(s for s in settled.largest if s.session_id == "killed")
