"""A server killed (SIGKILL) in the middle of a stream of appends, then restarted on its data.

Run with ``make test``. The server keeps its data on disk (``--storage-path``) and syncs every
commit (``--sync-on-commit``); one store object appends throughout, retrying failed batches as
the SDK's transcript mirror does, and its client reconnects on its own after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from claude_agent_sdk import fold_session_summary
from devtools.secantus import SecantusServer

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey
from session_store_protocol.errors import StoreUnavailableError
from tests.servers import append_like_sdk, running_server, transcript_batch

pytestmark = pytest.mark.live

BATCHES = 40
BATCH_SIZE = 3
KILL_AFTER = 10
"""Acknowledged batches before the kill."""
OUTAGE_SECONDS = 2.5
"""Longer than the store's server selection timeout, so appends fail during the outage."""


@pytest.fixture
def durable_server(secantusd: Path, tmp_path: Path) -> Iterator[SecantusServer]:
    """A SecantusDB on an on-disk storage path that fsyncs every commit."""
    with running_server(
        secantusd, "--sync-on-commit", storage_path=str(tmp_path / "data")
    ) as server:
        yield server


async def test_sigkill_mid_stream_loses_no_acknowledged_append(
    durable_server: SecantusServer,
) -> None:
    """After SIGKILL and restart, acknowledged entries are stored once, in order, summarized."""
    store = MongoSessionStore(
        url=durable_server.url,
        database="restart",
        client_options={"serverSelectionTimeoutMS": 1000, "connectTimeoutMS": 1000},
    )
    key: SessionKey = {"project_key": "restart", "session_id": "s"}
    batches = [transcript_batch("s", n * BATCH_SIZE, BATCH_SIZE) for n in range(BATCHES)]
    acknowledged: list[int] = []
    failures: list[int] = []
    kill_now = asyncio.Event()

    async def write() -> None:
        for number, batch in enumerate(batches):
            try:
                failures.append(await append_like_sdk(store, key, batch, attempts=10))
                acknowledged.append(number)
                if len(acknowledged) == KILL_AFTER:
                    kill_now.set()
            except StoreUnavailableError:
                failures.append(10)

    writer = asyncio.create_task(write())
    await kill_now.wait()
    killed_pid = durable_server.pid
    await asyncio.to_thread(durable_server.kill)
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(durable_server.start)
    await writer

    assert durable_server.pid != killed_pid
    assert sum(failures) > 0, "no append failed: the kill missed the stream"
    loaded = await store.load(key)
    assert loaded is not None
    stored = [entry["uuid"] for entry in loaded]
    assert len(stored) == len(set(stored)), "an entry is stored twice"
    attempted = [entry["uuid"] for batch in batches for entry in batch]
    assert stored == [uuid for uuid in attempted if uuid in set(stored)], "order not kept"
    for number in acknowledged:
        assert {entry["uuid"] for entry in batches[number]} <= set(stored)
    await store.close()
    # A batch whose reservation landed before the kill leaves its block unreported; the
    # summary catches it up once the in-flight lease ends (shortened here: see test_faults).
    async with MongoSessionStore(
        url=durable_server.url, database="restart", summary_lease_ms=0
    ) as reader:
        [summary] = await reader.list_session_summaries("restart")
    assert summary["data"] == fold_session_summary(None, key, loaded)["data"]
