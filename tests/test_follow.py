"""Live follow: the stored part, then every entry any process appends, exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from devtools.secantus import SecantusServer
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent

from session_store_mongo import MongoSessionStore, StoredEntry
from session_store_mongo.append import Block
from session_store_mongo.codec import prepare_entry
from session_store_mongo.follow import Follower
from session_store_mongo.layout import DEFAULT_COLLECTION_PREFIX, key_fields
from session_store_protocol import SessionKey, SessionStoreEntry
from session_store_protocol.errors import (
    InvalidKeyError,
    InvalidStoreOptionsError,
    StoreAuthorizationError,
    StoreClosedError,
    StoreUnavailableError,
)
from tests.servers import append_like_sdk, fail_command, running_server, transcript_batch
from tests.support import REPO_ROOT, unique_name
from tests.writer_process import PROJECT

KEY: SessionKey = {"project_key": PROJECT, "session_id": "s"}
SUB: SessionKey = {**KEY, "subpath": "subagents/agent-1"}
ENTRIES = f"{DEFAULT_COLLECTION_PREFIX}entries"


def _entries(count: int, prefix: str = "e") -> list[SessionStoreEntry]:
    return [{"type": "user", "uuid": f"{prefix}{n}"} for n in range(count)]


async def take(follower: Follower, count: int, timeout: float = 15) -> list[StoredEntry]:
    """The next ``count`` items, or fail after ``timeout`` seconds showing what came."""
    items: list[StoredEntry] = []

    async def run() -> None:
        async for item in follower:
            items.append(item)
            if len(items) == count:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        seen = [(i.subpath, i.seq, i.entry.get("uuid")) for i in items]
        raise AssertionError(f"{len(items)} of {count} items in {timeout}s: {seen}") from None
    return items


async def nothing_within(follower: Follower, seconds: float) -> None:
    """Assert the follower delivers nothing for ``seconds``."""
    try:
        item = await asyncio.wait_for(follower.__anext__(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"delivered {item} although it had to hold back")


async def _reserve(store: MongoSessionStore, entries: list[SessionStoreEntry]) -> Block:
    """Reserve seq numbers for ``entries`` as an append does, without inserting them yet."""
    prepared = [prepare_entry(n, entry, 16 * 1024 * 1024, None) for n, entry in enumerate(entries)]
    return await Block.reserve(store._collections, store._connection, key_fields(KEY), prepared)


async def ends_deleted(follower: Follower) -> None:
    """Assert the follower ends by itself, with nothing more, because the session was deleted."""

    async def drain() -> list[StoredEntry]:
        return [item async for item in follower]

    assert await asyncio.wait_for(drain(), 10) == []
    assert follower.deleted


def uuids(items: list[StoredEntry]) -> list[str]:
    return [str(item.entry["uuid"]) for item in items]


@pytest.fixture
async def writer(live_store: MongoSessionStore, mongo_url: str) -> AsyncIterator[MongoSessionStore]:
    """Another store (another client) on the live store's database: the appending side."""
    async with MongoSessionStore(url=mongo_url, database=live_store.database) as store:
        yield store


# -- exactly once, in order -------------------------------------------------------------------


@pytest.mark.live
async def test_follows_a_writer_in_another_process_exactly_once_in_order(
    live_store: MongoSessionStore, mongo_url: str
) -> None:
    """A writer in another OS process: the follower gets exactly its entries, in order."""
    await live_store.append(KEY, transcript_batch("s", 0, 3))  # part of it stored before
    args = ["--batches", "30", "--batch-size", "3", "--pause", "0.01"]
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.writer_process", mongo_url, live_store.database, "s"],
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with live_store.follow(KEY) as follower:
            items = await take(follower, 90, timeout=60)
    finally:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert b"appended 90" in out
    expected = transcript_batch("s", 0, 90)
    assert [item.entry for item in items] == expected
    assert [item.seq for item in items] == sorted({item.seq for item in items})
    assert {item.subpath for item in items} == {None}
    # The first batch was stored twice (before, and by the process): its retry is a gap.
    assert await live_store.load(KEY) == expected


@pytest.mark.live
async def test_eight_concurrent_writers_arrive_exactly_as_load_returns_them(
    live_store: MongoSessionStore, mongo_url: str
) -> None:
    """Eight writers at once commit blocks out of order; the follower still matches ``load``."""
    writers = [MongoSessionStore(url=mongo_url, database=live_store.database) for _ in range(8)]

    async def write(number: int, store: MongoSessionStore) -> None:
        for batch in range(10):
            await store.append(KEY, _entries(1 + batch % 3, f"w{number}-{batch}-"))

    async with live_store.follow(KEY) as follower:
        await asyncio.gather(*(write(n, s) for n, s in enumerate(writers)))
        total = 8 * sum(1 + batch % 3 for batch in range(10))
        items = await take(follower, total)
    for store in writers:
        await store.close()
    assert [item.entry for item in items] == await live_store.load(KEY)
    assert len({item.seq for item in items}) == total


@pytest.mark.live
async def test_follow_starts_after_a_position_or_at_the_end(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """``after=seq`` resumes after that entry; ``after="end"`` gets only what comes next."""
    await writer.append(KEY, _entries(10))
    async with (
        live_store.follow(KEY, after=4) as resumed,
        live_store.follow(KEY, after="end") as at_end,
    ):
        assert uuids(await take(resumed, 6)) == [f"e{n}" for n in range(4, 10)]
        await nothing_within(at_end, 0.3)
        await writer.append(KEY, _entries(2, "new"))
        assert uuids(await take(resumed, 2)) == ["new0", "new1"]
        ended = await take(at_end, 2)
        assert uuids(ended) == ["new0", "new1"]
        assert at_end.position == {None: ended[-1].seq}


@pytest.mark.live
async def test_a_follower_resumes_from_its_position_without_repeating(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """``after=follower.position`` continues with the next entry, subagents included."""
    await writer.append(KEY, _entries(3))
    await writer.append(SUB, _entries(2, "sub"))
    async with live_store.follow(KEY, include_subkeys=True) as first:
        items = await take(first, 5)
        position = first.position
    assert {(i.subpath, str(i.entry["uuid"])) for i in items} == {
        (None, "e0"), (None, "e1"), (None, "e2"),
        ("subagents/agent-1", "sub0"), ("subagents/agent-1", "sub1"),
    }  # fmt: skip
    await writer.append(SUB, _entries(1, "late"))
    await writer.append(KEY, _entries(1, "later"))
    async with live_store.follow(KEY, after=position, include_subkeys=True) as second:
        rest = await take(second, 2)
    assert sorted(uuids(rest)) == ["late0", "later0"]


@pytest.mark.live
async def test_an_in_flight_block_holds_back_later_entries_until_it_lands(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """A block reserved first but inserted last is delivered before the entries after it."""
    await writer.append(KEY, _entries(1, "first"))
    slow = [
        prepare_entry(n, entry, 16 * 1024 * 1024, None)
        for n, entry in enumerate(_entries(2, "slow"))
    ]
    block = await Block.reserve(writer._collections, writer._connection, key_fields(KEY), slow)
    async with live_store.follow(KEY) as follower:
        assert uuids(await take(follower, 1)) == ["first0"]
        await writer.append(KEY, _entries(2, "fast"))
        await nothing_within(follower, 0.5)
        await block.insert()
        assert uuids(await take(follower, 4)) == ["slow0", "slow1", "fast0", "fast1"]


@pytest.mark.live
async def test_a_skipped_duplicate_is_passed_without_waiting_for_the_lease(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """A retried batch leaves a gap the accounting decides at once (no lease to wait for)."""
    async with live_store.follow(KEY) as follower:
        await writer.append(KEY, _entries(2))
        await writer.append(KEY, _entries(2))  # the SDK's retry: both skipped, a gap
        await writer.append(KEY, _entries(1, "next"))
        started = time.monotonic()
        assert uuids(await take(follower, 3)) == ["e0", "e1", "next0"]
    assert time.monotonic() - started < 5  # the lease is 120 s


@pytest.mark.live
async def test_a_fenced_block_is_passed_at_once_live_and_stored(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """Holes (a failed insert, fenced) decide their numbers: no lease to wait for, either way."""
    await writer.append(KEY, _entries(1, "first"))
    failed = await _reserve(writer, _entries(2, "failed"))
    await writer.append(KEY, _entries(1, "after"))  # settled stays behind the failed block
    async with live_store.follow(KEY) as live:
        assert uuids(await take(live, 1)) == ["first0"]
        await nothing_within(live, 0.3)  # the failed block is still in flight
        await failed.fence()  # its insert failed: a hole on each of its numbers
        assert uuids(await take(live, 1, timeout=5)) == ["after0"]
    async with live_store.follow(KEY) as stored:
        assert uuids(await take(stored, 2, timeout=5)) == ["first0", "after0"]


@pytest.mark.live
async def test_holes_arriving_live_move_an_idle_follower_past_them(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """A caught-up follower passes holes as they come; the entry after them then arrives."""
    await writer.append(KEY, _entries(1, "first"))
    async with live_store.follow(KEY) as follower:
        assert uuids(await take(follower, 1)) == ["first0"]
        failed = await _reserve(writer, _entries(2, "failed"))
        await failed.fence()
        await nothing_within(follower, 0.3)  # holes are passed, never handed out
        await writer.append(KEY, _entries(1, "after"))
        assert uuids(await take(follower, 1)) == ["after0"]


@pytest.mark.live
async def test_a_reservation_abandoned_by_a_crashed_writer_is_passed_after_the_lease(
    mongo_url: str, live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """A writer that reserved and died holds the follower back for the lease, then not."""
    await _reserve(writer, _entries(1, "never"))  # and then the writer died
    await writer.append(KEY, _entries(1, "after"))
    async with (
        MongoSessionStore(
            url=mongo_url, database=live_store.database, summary_lease_ms=600
        ) as reader,
        reader.follow(KEY) as follower,
    ):
        await nothing_within(follower, 0.3)
        [item] = await take(follower, 1, timeout=5)
    assert (item.seq, item.entry["uuid"]) == (2, "after0")


@pytest.mark.live
async def test_chunked_and_escaped_entries_arrive_as_load_returns_them(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """An entry above 16 MB (chunked) with keys MongoDB cannot hold, live and stored alike."""
    big = {
        "type": "tool_result",
        "uuid": "big",
        "content": "x" * (17 * 1024 * 1024) + " split \ud83d",
        "key \udc00.$": ["\ud83d\ude00", {"%str": "%ud83d"}, 2**70],
    }
    odd = {"type": "user", "uuid": "odd", "$set": {"a.b": 1}, "n": -(2**80)}
    async with live_store.follow(KEY) as live:
        await writer.append(KEY, [odd, big])
        assert [item.entry for item in await take(live, 2, timeout=60)] == [odd, big]
    async with live_store.follow(KEY) as stored:
        assert [item.entry for item in await take(stored, 2, timeout=60)] == [odd, big]


# -- the end, faults, restarts ------------------------------------------------------------------


@pytest.mark.live
async def test_deleting_the_session_ends_the_follow_and_says_so(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """Deleting the session ends the iteration cleanly, with ``follower.deleted`` set."""
    await writer.append(KEY, _entries(2))
    async with live_store.follow(KEY, include_subkeys=True) as follower:
        await take(follower, 2)
        assert not follower.deleted
        await writer.delete(KEY)
        await ends_deleted(follower)


@pytest.mark.live
async def test_pruning_the_session_ends_the_follow(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """Retention removes the session's documents: a follower of it ends too."""
    await writer.append(SUB, _entries(1))
    async with live_store.follow(SUB) as follower:
        await take(follower, 1)
        assert await writer.prune_inactive(0) == [{"project_key": PROJECT, "session_id": "s"}]
        await ends_deleted(follower)


@pytest.mark.live
async def test_a_follower_started_before_the_session_exists_sees_it_and_its_deletion(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """Following a key nobody wrote yet waits for it, then follows it to its deletion."""
    async with live_store.follow(KEY) as follower:
        await nothing_within(follower, 0.2)
        await writer.append(KEY, _entries(2))
        assert uuids(await take(follower, 2)) == ["e0", "e1"]
        await writer.delete(KEY)
        await ends_deleted(follower)


@pytest.mark.live
async def test_following_a_deleted_session_ends_at_once_and_a_recreated_one_is_followed(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """A session deleted before the follow starts ends it at once; appended again, it lives."""
    await writer.append(KEY, _entries(2))
    await writer.delete(KEY)
    async with live_store.follow(KEY, after={None: 1}) as follower:
        await ends_deleted(follower)
    await writer.append(KEY, _entries(1, "again"))
    async with live_store.follow(KEY) as follower:
        [item] = await take(follower, 1)
    assert (item.seq, item.entry["uuid"]) == (3, "again0")


@pytest.fixture
def durable_server(secantusd: Path, tmp_path: Path) -> Any:
    """A SecantusDB on an on-disk storage path that fsyncs every commit."""
    with running_server(
        secantusd, "--sync-on-commit", storage_path=str(tmp_path / "data")
    ) as server:
        yield server


@pytest.mark.live
async def test_a_server_restart_mid_follow_loses_and_repeats_nothing(
    durable_server: SecantusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed and restarted on its data mid-follow: the follower matches ``load`` exactly."""
    options = {"serverSelectionTimeoutMS": 1000, "connectTimeoutMS": 1000}
    store = MongoSessionStore(url=durable_server.url, database="follow", client_options=options)
    reader = MongoSessionStore(
        url=durable_server.url, database="follow", client_options=options, summary_lease_ms=3000
    )
    batches = [transcript_batch("s", n * 3, 3) for n in range(20)]

    async def write() -> None:
        for number, batch in enumerate(batches):
            await append_like_sdk(store, KEY, batch, attempts=20)
            if number == 8:
                await asyncio.to_thread(durable_server.kill)
                await asyncio.sleep(1.5)
                await asyncio.to_thread(durable_server.start)

    with caplog.at_level(logging.INFO, logger="session_store_mongo"):
        async with reader.follow(KEY, poll_interval=0.2) as follower:
            items, _ = await asyncio.gather(take(follower, 60, timeout=60), write())
            await nothing_within(follower, 0.3)
    assert any("reconnecting" in r.getMessage() for r in caplog.records), "no outage seen"
    loaded = await store.load(KEY)
    assert [item.entry for item in items] == loaded
    assert [entry["uuid"] for entry in loaded] == [e["uuid"] for b in batches for e in b]
    await store.close()
    await reader.close()


@pytest.mark.live
async def test_a_lost_resume_token_falls_back_to_reading_from_the_position(
    secantusd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server no longer knows the stream's place: reopen from now, re-read what was missed."""
    with running_server(secantusd, "--enable-test-commands") as server:
        admin: AsyncMongoClient[Any] = AsyncMongoClient(server.url)
        commands = _Commands()
        store = MongoSessionStore(
            url=server.url, database="lost", client_options={"event_listeners": [commands]}
        )
        await store.append(KEY, _entries(1))
        with caplog.at_level(logging.INFO, logger="session_store_mongo"):
            async with store.follow(KEY, poll_interval=0.1) as follower:
                assert uuids(await take(follower, 1)) == ["e0"]
                await store.append(KEY, _entries(1, "live"))  # the stream has a place now
                assert uuids(await take(follower, 1)) == ["live0"]
                # ChangeStreamHistoryLost on the stream and on the next two attempts to resume.
                await fail_command(admin, ["getMore", "aggregate"], times=3, errorCode=286)
                await store.append(KEY, _entries(3, "missed"))
                assert uuids(await take(follower, 3)) == ["missed0", "missed1", "missed2"]
                await store.append(KEY, _entries(1, "after"))
                assert uuids(await take(follower, 1)) == ["after0"]
        assert any("reconnecting" in r.getMessage() for r in caplog.records)
        opened = commands.change_streams_opened()
        assert any("resumeAfter" in stage for stage in opened)  # it tried to resume first
        assert "resumeAfter" not in opened[-1]  # then started from now
        await store.close()
        await admin.close()


@contextlib.asynccontextmanager
async def _following(
    server: SecantusServer, *, selection_ms: int, reconnect_timeout: float
) -> AsyncIterator[Follower]:
    """A follower of ``KEY`` on ``server``, past the one entry stored there."""
    store = MongoSessionStore(
        url=server.url,
        database="gone",
        client_options={"serverSelectionTimeoutMS": selection_ms},
    )
    await store.append(KEY, _entries(1))
    follower = store.follow(KEY, reconnect_timeout=reconnect_timeout)
    try:
        await take(follower, 1)
        yield follower
    finally:
        await follower.aclose()
        await store.close()


@pytest.mark.live
async def test_a_server_gone_for_good_ends_in_a_typed_error_after_reconnect_timeout(
    secantusd: Path,
) -> None:
    """``reconnect_timeout`` counts from the first failed request and caps every retry.

    Server selection may wait 10 s, the follow only 2: the typed error comes well before the
    client's own timeout would end one request (a retry used to wait all of it, and the first
    failure too), and says how long the follower tried.
    """
    with running_server(secantusd) as server:
        async with _following(server, selection_ms=10_000, reconnect_timeout=2) as follower:
            server.stop(10)
            with pytest.raises(StoreUnavailableError, match=r"follow on 127\.0\.0\.1") as raised:
                await asyncio.wait_for(follower.__anext__(), 8)
    tried = re.search(
        r"gave up after (\d+\.\d)s of trying \(reconnect_timeout=2s\)", str(raised.value)
    )
    assert tried is not None, str(raised.value)
    assert float(tried[1]) >= 2  # it did retry for the whole reconnect_timeout


@pytest.mark.live
async def test_reconnect_timeout_0_ends_the_follow_at_the_first_failure(
    secantusd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``reconnect_timeout=0`` retries nothing: the first request that fails ends the follow."""
    with running_server(secantusd) as server:
        async with _following(server, selection_ms=500, reconnect_timeout=0) as follower:
            server.stop(10)
            with (
                caplog.at_level(logging.INFO, logger="session_store_mongo"),
                pytest.raises(StoreUnavailableError, match=r"\(reconnect_timeout=0s\)"),
            ):
                await asyncio.wait_for(follower.__anext__(), 20)
    assert not [r for r in caplog.records if "reconnecting" in r.getMessage()]


@pytest.mark.live
async def test_retries_in_an_outage_are_capped_by_the_time_left(
    secantusd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The deadline runs from the first failure: a retry never waits out server selection.

    The stream fails at once (the server refuses its commands), the follower retries, then
    the server goes away: the retry that meets no server (whose selection may wait 10 s) is
    given only what is left of the 3 s.
    """
    with running_server(secantusd, "--enable-test-commands") as server:
        admin: AsyncMongoClient[Any] = AsyncMongoClient(server.url)
        async with _following(server, selection_ms=10_000, reconnect_timeout=3) as follower:
            caplog.set_level(logging.WARNING, logger="session_store_mongo")
            await fail_command(admin, ["getMore", "aggregate", "find"], times=1000, errorCode=2)
            pending = asyncio.ensure_future(follower.__anext__())
            for _ in range(200):  # the first failure is reported within 10 s
                if any("reconnecting" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the refused commands were not reported")
            await admin.close()
            await asyncio.to_thread(server.stop, 10)
            with pytest.raises(StoreUnavailableError, match=r"\(reconnect_timeout=3s\)"):
                await asyncio.wait_for(pending, 8)


@pytest.mark.live
async def test_a_read_refused_to_the_user_ends_the_follow_at_once(
    secantusd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal to this user is not an outage: raised typed at once, nothing retried.

    The follow would retry an outage for 30 s; the refused read ends it well before, as a
    ``StoreAuthorizationError`` (it used to turn into a ``TypeError`` when the time ran out).
    """
    with running_server(secantusd, "--enable-test-commands") as server:
        admin: AsyncMongoClient[Any] = AsyncMongoClient(server.url)
        async with _following(server, selection_ms=10_000, reconnect_timeout=30) as follower:
            caplog.set_level(logging.WARNING, logger="session_store_mongo")
            await fail_command(admin, ["getMore", "aggregate", "find"], times=1000, errorCode=13)
            with pytest.raises(StoreAuthorizationError, match=r"follow on .* failed"):
                await asyncio.wait_for(follower.__anext__(), 8)
            assert not [r for r in caplog.records if "reconnecting" in r.getMessage()]
        await admin.close()


@pytest.mark.live
async def test_closing_the_store_ends_a_follow_with_store_closed(
    live_store: MongoSessionStore, writer: MongoSessionStore, mongo_url: str
) -> None:
    """A follower of a store closed meanwhile raises StoreClosedError, not a driver error."""
    store = MongoSessionStore(url=mongo_url, database=live_store.database)
    await writer.append(KEY, _entries(1))
    follower = store.follow(KEY)
    await take(follower, 1)
    await store.close()
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(follower.__anext__(), 10)
    with pytest.raises(StoreClosedError):
        store.follow(KEY)


@pytest.mark.live
async def test_a_slow_consumer_makes_the_follower_read_nothing_ahead(
    mongo_url: str, live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """The stored part comes one cursor batch at a time, as the consumer asks for it."""
    await writer.append(KEY, _entries(500))
    commands = _Commands()
    options = {"event_listeners": [commands]}
    async with (
        MongoSessionStore(url=mongo_url, database=live_store.database, client_options=options) as r,
        r.follow(KEY) as follower,
    ):
        first = await take(follower, 1)
        assert commands.entry_reads() == ["find"]  # the first batch, nothing more for now
        items = first + await take(follower, 499)
    assert uuids(items) == [f"e{n}" for n in range(500)]
    assert commands.entry_reads().count("getMore") >= 1


class _Commands(CommandListener):
    """Records every command a client starts."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.commands.append(dict(event.command))

    def entry_reads(self) -> list[str]:
        """``find`` and ``getMore`` commands on the entries collection, in order."""
        return [
            next(iter(c)) for c in self.commands if ENTRIES in (c.get("find"), c.get("collection"))
        ]

    def change_streams_opened(self) -> list[dict[str, Any]]:
        return [c["pipeline"][0]["$changeStream"] for c in self.commands if "aggregate" in c]

    def succeeded(self, event: Any) -> None:
        """Nothing to record."""

    def failed(self, event: Any) -> None:
        """Nothing to record."""


@pytest.mark.live
async def test_motor_client_follows_through_change_streams(
    mongo_url: str, live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """An injected Motor client follows too (its stream opens lazily; the follower opens it)."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client: Any = AsyncIOMotorClient(mongo_url)
    store = MongoSessionStore(client=client, database=live_store.database)
    await writer.append(KEY, _entries(1))
    async with store.follow(KEY) as follower:
        await take(follower, 1)
        await writer.append(KEY, _entries(2, "live"))
        assert uuids(await take(follower, 2)) == ["live0", "live1"]
    client.close()


# -- polling where there are no change streams -------------------------------------------------


async def test_mongomock_polls_and_logs_that_it_does_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without change streams the follower polls by position, and says so once per client."""
    client: Any = AsyncMongoMockClient()
    store = MongoSessionStore(client=client, database=unique_name("mock"))
    await store.append(KEY, _entries(2))
    with caplog.at_level(logging.WARNING, logger="session_store_mongo"):
        async with store.follow(KEY, poll_interval=0.02) as follower:
            assert uuids(await take(follower, 2)) == ["e0", "e1"]
            await store.append(KEY, _entries(1, "live"))
            await store.append(SUB, _entries(1, "sub"))  # another transcript: not followed
            assert uuids(await take(follower, 1)) == ["live0"]
        async with store.follow(KEY, after="end", poll_interval=0.02) as again:
            await store.append(KEY, _entries(1, "more"))
            assert uuids(await take(again, 1)) == ["more0"]
            await store.delete(KEY)
            await ends_deleted(again)
    polling = [r for r in caplog.records if "no change streams" in r.getMessage()]
    assert len(polling) == 1
    assert "polling every 0.02s" in polling[0].getMessage()


async def test_closing_ends_a_follow_whose_wait_dropped_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``aclose`` cancels again until the follow ends, as a Ctrl-C must end it at once.

    Python 3.11's ``asyncio.wait_for``, through which PyMongo sends each request, drops a
    cancellation that lands as the send completes; the wait here drops the first one so.
    """
    waits: list[str] = []

    async def wait_dropping_one_cancellation(self: Follower) -> AsyncIterator[StoredEntry]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            waits.append("dropped a cancellation")
        await asyncio.sleep(30)  # the follow goes on
        nothing: tuple[StoredEntry, ...] = ()
        for item in nothing:  # an async generator, as the one it stands for
            yield item

    monkeypatch.setattr(Follower, "_listen", wait_dropping_one_cancellation)
    store = MongoSessionStore(client=AsyncMongoMockClient(), database=unique_name("mock"))
    await store.append(KEY, _entries(1))
    follower = store.follow(KEY, poll_interval=0.02)
    assert uuids(await take(follower, 1)) == ["e0"]
    waiting = asyncio.ensure_future(follower.__anext__())
    await asyncio.sleep(0.1)  # the follow is waiting for the next change
    waiting.cancel()  # a Ctrl-C cancels the consumer; closing then ends the follow
    await asyncio.wait_for(follower.aclose(), 5)
    assert waits == ["dropped a cancellation"]


@pytest.mark.live
async def test_polling_on_a_live_server_matches_load(
    live_store: MongoSessionStore, writer: MongoSessionStore
) -> None:
    """``change_streams=False`` polls a live server and still gets every entry once, in order."""
    await writer.append(KEY, _entries(3))
    async with live_store.follow(KEY, change_streams=False, poll_interval=0.05) as follower:
        await asyncio.gather(
            *(writer.append(KEY, _entries(2, f"w{n}-")) for n in range(4)),
            writer.append(SUB, _entries(1, "sub")),
        )
        items = await take(follower, 11)
    assert [item.entry for item in items] == await live_store.load(KEY)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "after", [-1, "start", 1.5, True, {"": 1}, {None: -2}, {"subagents/a": "3"}]
)
def test_a_bad_position_is_refused_with_a_typed_error(after: Any) -> None:
    """A position that is not None, "end", a seq or a mapping of them is refused at once."""
    store = MongoSessionStore(client=AsyncMongoMockClient(), database=unique_name("mock"))
    with pytest.raises(InvalidKeyError, match="after must be"):
        store.follow(KEY, after=after)


def test_include_subkeys_needs_a_main_key_and_keys_are_validated() -> None:
    """Subkeys of a subkey make no sense; a malformed key is refused before anything runs."""
    store = MongoSessionStore(client=AsyncMongoMockClient(), database=unique_name("mock"))
    with pytest.raises(InvalidKeyError, match="include_subkeys"):
        store.follow(SUB, include_subkeys=True)
    with pytest.raises(InvalidKeyError):
        store.follow({"project_key": "p", "session_id": {"$ne": ""}})
    with pytest.raises(InvalidStoreOptionsError, match="poll_interval"):
        store.follow(KEY, poll_interval=0)
