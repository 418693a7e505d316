"""Mongo store specifics: layout, round trips, summaries catching up, lifecycle."""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from claude_agent_sdk import fold_session_summary
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient

from session_store_mongo import (
    DEFAULT_COLLECTION_PREFIX,
    MongoSessionStore,
    mongo_session_store_builder,
)
from session_store_mongo.codec import epoch_ms
from session_store_mongo.layout import key_fields
from session_store_protocol import (
    InvalidStoreOptionsError,
    SessionKey,
    StoreClosedError,
    StoreUnavailableError,
    SummariesUnavailableError,
)
from tests.support import REPO_ROOT, CommandLog, StoreFactory, store_collection, unique_name

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
SUB: SessionKey = {"project_key": "proj", "session_id": "sess", "subpath": "subagents/agent-1"}


def _entries(n: int, prefix: str = "e", start: int = 0) -> list[Any]:
    return [{"type": "user", "uuid": f"{prefix}{i}", "n": i} for i in range(start, start + n)]


@pytest.fixture
async def counted(mongo_url: str) -> AsyncIterator[tuple[MongoSessionStore, CommandLog]]:
    listener = CommandLog()
    database = unique_name("rt")
    store = MongoSessionStore(
        url=mongo_url, database=database, client_options={"event_listeners": [listener]}
    )
    await store.connect()
    yield store, listener
    await store.client.drop_database(database)
    await store.close()


@pytest.mark.live
async def test_append_round_trips_do_not_grow_with_the_session(
    counted: tuple[MongoSessionStore, CommandLog],
) -> None:
    """Any append is 2 commands at any length: reserve, then insert-and-settle in one bulkWrite."""
    store, listener = counted
    for key in (SUB, KEY):
        await store.append(key, _entries(1000, prefix="fill"))
        for _ in range(3):
            listener.names.clear()
            await store.append(key, _entries(5, prefix=unique_name()))
            assert listener.names == ["findAndModify", "bulkWrite"]
        sessions = store_collection(store.client, store, "sessions")
        session = await sessions.find_one(key_fields(key))
        assert session["settled"] == session["seq"] == session["count"] == 1015
    [summary] = await store.list_session_summaries(KEY["project_key"])
    assert summary["data"]  # folded in the bulkWrite's settling


@pytest.mark.live
async def test_bulk_write_false_sends_insert_and_settle_apart(mongo_url: str) -> None:
    """With ``bulk_write=False`` (or a server before 8.0) an append is 3 commands."""
    listener = CommandLog()
    database = unique_name("rt")
    store = MongoSessionStore(
        url=mongo_url,
        database=database,
        client_options={"event_listeners": [listener]},
        bulk_write=False,
    )
    await store.append(KEY, _entries(5, prefix="first"))
    listener.names.clear()
    await store.append(KEY, _entries(5, prefix="second"))
    assert listener.names == ["findAndModify", "insert", "findAndModify"]
    assert await store.size(KEY) == 10
    await store.client.drop_database(database)
    await store.close()


@pytest.mark.live
async def test_reappending_a_stored_batch_costs_one_indexed_lookup(
    counted: tuple[MongoSessionStore, CommandLog],
) -> None:
    """Re-appending 2,000 stored entries: reserve, insert(s), one range lookup of the block.

    Whether a duplicate uuid is held by our own insert (landed before a driver retry) is read
    from the block's own ``seq`` range through the ``entry_seq`` index: its cost follows the
    batch, never the session (a query on ``_id`` with the key fields scanned the session).
    """
    store, listener = counted
    batch = _entries(2000, prefix="again")
    await store.append(SUB, batch)
    listener.commands.clear()
    listener.names.clear()
    await store.append(SUB, batch)
    assert await store.load(SUB) == batch
    finds = [c for c in listener.commands if "find" in c]
    assert len(finds) == 2  # the lookup of the duplicates, then the load
    assert list(finds[0]["filter"]) == ["project_key", "session_id", "subpath", "seq"]
    seq = finds[0]["filter"]["seq"]
    assert seq["$lte"] - seq["$gte"] == 1999
    appended = listener.names[: listener.names.index("find") + 1]
    # The bulkWrite stops at the first duplicate; the batch goes again as one insert.
    expected = ["findAndModify", "bulkWrite", "insert", "find"]
    assert [n for n in appended if n != "getMore"] == expected


@pytest.mark.live
async def test_load_is_one_sorted_indexed_query(
    counted: tuple[MongoSessionStore, CommandLog],
) -> None:
    """Load sends one ``find`` on the key and ``seq``, sorted by ``seq`` (plus getMores)."""
    store, listener = counted
    await store.append(KEY, _entries(300))
    listener.clear()
    loaded = await store.load(KEY)
    assert loaded == _entries(300)
    assert set(listener.names) <= {"find", "getMore"}
    [find] = [c for c in listener.commands if "find" in c]
    assert list(find["filter"]) == ["project_key", "session_id", "subpath", "seq"]
    assert find["filter"]["seq"] == {"$gt": 0}
    assert dict(find["sort"]) == {"seq": 1}


@pytest.mark.live
async def test_storage_layout(live_store: MongoSessionStore, live_client: Any) -> None:
    """Entries are queryable documents; only odd entries are escaped; indexes are named."""
    await live_store.append(KEY, [{"type": "user", "uuid": "u1"}, {"type": "x", "$odd": 1}])
    names = await live_client[live_store.database].list_collection_names()
    assert sorted(names) == [
        "session_store_entries",
        "session_store_entry_chunks",
        "session_store_sessions",
    ]
    entries = store_collection(live_client, live_store, "entries")
    sessions = store_collection(live_client, live_store, "sessions")
    docs = await entries.find({}, {"_id": 0}).sort("seq", 1).to_list(None)
    assert docs[0] == {
        "project_key": "proj",
        "session_id": "sess",
        "subpath": "",
        "seq": 1,
        "dedupe": "u1",
        "entry": {"type": "user", "uuid": "u1"},
    }
    assert docs[1]["escaped"] is True
    assert docs[1]["entry"] == {"type": "x", "%24odd": 1}
    assert await entries.count_documents({"entry.type": "user"}) == 1
    session = await sessions.find_one({"session_id": "sess"})
    assert (session["seq"], session["count"], session["settled"]) == (2, 2, 2)
    entry_indexes = {i["name"] for i in await (await entries.list_indexes()).to_list(None)}
    assert {"entry_seq", "entry_dedupe"} <= entry_indexes
    session_indexes = {i["name"] for i in await (await sessions.list_indexes()).to_list(None)}
    assert {"session_key", "session_mtime"} <= session_indexes


@pytest.mark.live
async def test_summary_left_behind_is_caught_up(
    live_store: MongoSessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends from a process without the SDK fold nothing; the next read catches up."""
    first = [{"type": "user", "uuid": "a", "customTitle": "one", "cwd": "/w"}]
    await live_store.append(KEY, first)
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # a process without the SDK
    await live_store.append(KEY, [{"type": "user", "uuid": "b", "customTitle": "two"}])
    monkeypatch.undo()
    [summary] = await live_store.list_session_summaries("proj")
    loaded = await live_store.load(KEY)
    assert summary["data"] == fold_session_summary(None, KEY, loaded or [])["data"]
    assert summary["data"]["custom_title"] == "two"


@pytest.mark.live
async def test_abandoned_reservation_does_not_freeze_summaries(
    live_store: MongoSessionStore, live_client: Any
) -> None:
    """A writer that reserved and died is taken as abandoned after the lease; summaries move on."""
    await live_store.append(KEY, [{"type": "user", "uuid": "a", "customTitle": "one"}])
    sessions = store_collection(live_client, live_store, "sessions")
    await sessions.update_one({"subpath": ""}, {"$inc": {"seq": 5}})  # a writer that died
    await live_store.append(KEY, [{"type": "user", "uuid": "b", "customTitle": "two"}])
    [summary] = await live_store.list_session_summaries("proj")
    assert summary["data"]["custom_title"] == "one"
    [listed] = await live_store.list_sessions("proj")
    assert summary["mtime"] < listed["mtime"]  # behind, and says so to the SDK
    assert await live_store.size(KEY) == 2  # "b" is stored past the settled count
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    await sessions.update_one({"subpath": ""}, {"$set": {"pending_since": old}})  # lease over
    [summary] = await live_store.list_session_summaries("proj")
    assert summary["data"]["custom_title"] == "two"
    doc = await sessions.find_one({"subpath": ""})
    assert doc["summary_seq"] == doc["seq"]
    assert (doc["settled"], doc["count"]) == (doc["seq"], 2)  # the dead block fenced, uncounted


@pytest.mark.live
async def test_counter_behind_entries_is_repaired(
    live_store: MongoSessionStore, live_client: Any
) -> None:
    """If the counter falls behind stored entries, append says so, repairs it, and retry works."""
    await live_store.append(SUB, _entries(3))
    sessions = store_collection(live_client, live_store, "sessions")
    await sessions.update_one({"subpath": SUB["subpath"]}, {"$set": {"seq": 0}})
    with pytest.raises(StoreUnavailableError, match="repaired"):
        await live_store.append(SUB, _entries(2, start=3))
    await live_store.append(SUB, _entries(2, start=3))
    assert await live_store.load(SUB) == _entries(5)


@pytest.mark.live
async def test_delete_keeps_the_counter(live_store: MongoSessionStore, live_client: Any) -> None:
    """After delete the transcript is gone, but its sequence counter never restarts."""
    await live_store.append(KEY, _entries(3))
    await live_store.delete(KEY)
    assert await live_store.load(KEY) is None
    assert await live_store.list_sessions("proj") == []
    assert await live_store.size(KEY) == 0
    await live_store.append(KEY, _entries(1, prefix="again"))
    doc = await store_collection(live_client, live_store, "entries").find_one({})
    assert doc["seq"] == 4
    [summary] = await live_store.list_session_summaries("proj")
    assert summary["data"] == fold_session_summary(None, KEY, _entries(1, prefix="again"))["data"]


@pytest.mark.live
async def test_mtime_is_shared_by_listing_and_summaries(live_store: MongoSessionStore) -> None:
    """``list_sessions`` and summaries report the same storage write time, in epoch ms."""
    await live_store.append(KEY, _entries(2))
    [listed] = await live_store.list_sessions("proj")
    [summary] = await live_store.list_session_summaries("proj")
    assert listed["mtime"] == summary["mtime"]
    now = datetime.now(timezone.utc).timestamp() * 1000
    assert abs(listed["mtime"] - now) < 60_000


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (datetime(2026, 11, 26, 15, 30, 1, 123_000), 1_795_707_001_123),
        (datetime(2026, 11, 26, 15, 30, 1, 123_000, tzinfo=timezone.utc), 1_795_707_001_123),
        (datetime(9999, 12, 31, 23, 59, 59, 999_000), 253_402_300_799_999),
        (datetime(6398, 7, 14, 18, 14, 24, 291_000), 139_751_028_864_291),  # a float gives 290
        (datetime(1969, 12, 31, 23, 59, 59, 999_000), -1),
        (None, 0),
    ],
)
def test_stored_times_become_exact_epoch_milliseconds(stored: Any, expected: int) -> None:
    """Naive BSON times are UTC; the last millisecond survives where a float would round."""
    assert epoch_ms(stored) == expected


@pytest.mark.live
async def test_size_stats_and_prune(live_store: MongoSessionStore, live_client: Any) -> None:
    """``size`` counts entries; ``prune_inactive`` removes whole idle sessions, dry run nothing."""
    idle: SessionKey = {"project_key": "proj", "session_id": "idle"}
    await live_store.append(KEY, _entries(4))
    await live_store.append(SUB, _entries(2))
    await live_store.append(idle, _entries(3))
    await live_store.append({**idle, "subpath": "subagents/agent-9"}, _entries(1))
    assert await live_store.size(KEY) == 4
    await live_store.append(KEY, _entries(4))
    assert await live_store.size(KEY) == 4
    stats = await live_store.stats()
    assert (stats.sessions, stats.transcripts, stats.entries) == (2, 4, 10)
    assert stats.largest[0].session_id in ("sess", "idle")
    old = datetime.now(timezone.utc) - timedelta(days=40)
    sessions = store_collection(live_client, live_store, "sessions")
    await sessions.update_many({"session_id": "idle"}, {"$set": {"mtime": old}})
    expected = [{"project_key": "proj", "session_id": "idle"}]
    assert await live_store.prune_inactive(timedelta(days=30), dry_run=True) == expected
    assert await live_store.load(idle) is not None
    assert await live_store.prune_inactive(timedelta(days=30)) == expected
    assert await live_store.load(idle) is None
    assert await live_store.list_subkeys(idle) == []
    assert await live_store.load(KEY) == _entries(4)
    assert await live_store.load(SUB) == _entries(2)


@pytest.mark.live
async def test_chunked_entry_larger_than_a_document(live_store: MongoSessionStore) -> None:
    """An entry above the 16 MB document limit is stored in chunks and reassembled.

    Lone UTF-16 surrogates (which UTF-8 cannot encode) and odd keys survive the chunks too.
    """
    big = {
        "type": "tool_result",
        "uuid": "big",
        "content": "x" * (17 * 1024 * 1024) + " split \ud83d",
        "key \udc00.$": ["\ud83d\ude00", {"%str": "%ud83d"}, 2**70],
    }
    small = {"type": "user", "uuid": "small"}
    await live_store.append(KEY, [small, big, {"type": "user", "uuid": "after"}])
    await live_store.append(KEY, [big])  # a retry of the big one is deduplicated
    loaded = await live_store.load(KEY)
    assert loaded is not None
    assert [e["uuid"] for e in loaded] == ["small", "big", "after"]
    assert loaded[1] == big
    items = [item async for item in live_store.iter_entries(KEY)]
    assert [item.entry for item in items] == loaded
    resumed = [item.entry async for item in live_store.iter_entries(KEY, after=items[0].seq)]
    assert resumed == loaded[1:]
    # Chunks gone under a reader (a delete racing it): a typed error, never a partial entry.
    await live_store.client[live_store.database][
        f"{DEFAULT_COLLECTION_PREFIX}entry_chunks"
    ].delete_many({"part": 1})
    with pytest.raises(StoreUnavailableError, match=r"stored in 3 chunks but 2 were found"):
        await live_store.load(KEY)


async def test_injected_client_is_not_closed_and_closed_store_refuses() -> None:
    """The store never closes a client it did not create; after close it raises."""
    client: Any = AsyncMongoMockClient()
    store = MongoSessionStore(client=client, database=unique_name())
    await store.append(KEY, _entries(1))
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.load(KEY)
    other = MongoSessionStore(client=client, database=store.database)
    assert await other.load(KEY) == _entries(1)


@pytest.mark.live
async def test_create_indexes_false_leaves_indexes_to_the_operator(
    mongo_url: str, live_client: Any
) -> None:
    """With ``create_indexes=False`` no index is made until ``ensure_indexes()`` runs."""
    database = unique_name("noidx")
    store = MongoSessionStore(url=mongo_url, database=database, create_indexes=False)
    try:
        await store.append(SUB, _entries(1))
        entries = store_collection(live_client, store, "entries")
        names = {i["name"] async for i in await entries.list_indexes()}
        assert names == {"_id_"}
        await store.ensure_indexes()
        await store.ensure_indexes()
        names = {i["name"] async for i in await entries.list_indexes()}
        assert {"entry_seq", "entry_dedupe"} <= names
    finally:
        await live_client.drop_database(database)
        await store.close()


async def _index_names(client: Any, database: str) -> set[str]:
    entries = client[database][f"{DEFAULT_COLLECTION_PREFIX}entries"]
    return {i["name"] async for i in await entries.list_indexes()}


@pytest.mark.live
async def test_indexes_are_remembered_per_client_identity(mongo_url: str) -> None:
    """Index creation is remembered per client object, and only once it really happened.

    PyMongo clients to the same hosts compare equal, so a cache keyed by equality would skip
    the second client; and a store with ``create_indexes=False`` must not mark them created.
    """
    database = unique_name("idx")
    first: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    second: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        await MongoSessionStore(client=first, database=database, create_indexes=False).append(
            SUB, _entries(1)
        )
        assert await _index_names(first, database) == {"_id_"}
        await MongoSessionStore(client=first, database=database).append(SUB, _entries(1))
        assert {"entry_seq", "entry_dedupe"} <= await _index_names(first, database)
        await first.drop_database(database)
        assert first == second  # equal by topology, yet a client of its own
        await MongoSessionStore(client=second, database=database).append(SUB, _entries(1))
        assert {"entry_seq", "entry_dedupe"} <= await _index_names(second, database)
    finally:
        await first.drop_database(database)
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "localhost:27017",
        "mongo://app:pw-SECRET-3@db/",
        "mongodb://app:pw-SECRET-3@/db",
        42,
    ],
)
def test_url_that_is_not_a_mongodb_url_is_refused_at_once(url: Any) -> None:
    """A URL of the wrong form is refused when the store is made, never echoing a password.

    The driver would take ``notaurl`` as a host name and wait for it for 15 seconds.
    """
    with pytest.raises(InvalidStoreOptionsError, match="url") as caught:
        MongoSessionStore(url=url)
    assert "pw-SECRET-3" not in str(caught.value)
    with pytest.raises(InvalidStoreOptionsError, match="url"):
        mongo_session_store_builder({"url": url})


@pytest.mark.parametrize("tier", ["mongomock", pytest.param("live", marks=pytest.mark.live)])
async def test_every_call_on_a_closed_store_raises(
    tier: str, request: pytest.FixtureRequest
) -> None:
    """After ``close()`` every call raises StoreClosedError, ``append(key, [])`` included."""
    if tier == "live":
        store = MongoSessionStore(url=request.getfixturevalue("mongo_url"))
    else:
        store = MongoSessionStore(client=AsyncMongoMockClient())
    await store.close()
    calls = [
        store.append(KEY, []),
        store.append(KEY, _entries(1)),
        store.load(KEY),
        store.size(KEY),
        store.list_sessions("proj"),
        store.list_subkeys({"project_key": "proj", "session_id": "sess"}),
        store.delete(KEY),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            await call


@pytest.mark.live
async def test_injected_client_in_another_loop_says_what_to_do(mongo_url: str) -> None:
    """A client injected from one loop and used in another: a typed error naming the fix."""

    def elsewhere(store: MongoSessionStore) -> None:
        async def load() -> None:
            await store.load(KEY)

        with pytest.raises(StoreUnavailableError, match=r"event loop.*url="):
            asyncio.run(load())

    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        store = MongoSessionStore(client=client, database=unique_name("loop"))
        await store.load(KEY)  # binds the client to this loop
        await asyncio.to_thread(elsewhere, store)
    finally:
        await client.close()


def test_unknown_url_option_is_logged_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    """The driver's warning about a URL option becomes a log record: hosts named, no password."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = MongoSessionStore(url="mongodb://app:s3cret-pw@127.0.0.1:1/?notAnOption=1")
    [record] = [r for r in caplog.records if r.name == "session_store_mongo"]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        "MongoDB URL for 127.0.0.1:1: Unknown option: notAnOption."
    )
    assert "s3cret-pw" not in caplog.text
    asyncio.run(store.close())


def test_unknown_url_options_are_named_but_not_a_piece_of_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each unknown option is named, except one that may be the rest of a secret cut at an '&'."""
    url = (
        "mongodb://127.0.0.1:1/?firstUnknown=1&appname=x"
        "&tlsCertificateKeyFilePassword=key-pw&rest-of-KEYPW=1&lastUnknown=2"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = MongoSessionStore(url=url)
    messages = [r.getMessage() for r in caplog.records if r.name == "session_store_mongo"]
    unknown = [message for message in messages if "Unknown option" in message]
    assert len(unknown) == 3, messages
    assert "Unknown option: firstUnknown." in unknown[0]
    assert "Unknown option." in unknown[1]
    assert "Unknown option: lastUnknown." in unknown[2]
    assert "KEYPW" not in caplog.text
    assert "key-pw" not in caplog.text
    asyncio.run(store.close())


@pytest.mark.live
def test_motor_client_in_a_second_asyncio_run_says_what_to_do(mongo_url: str) -> None:
    """A Motor client outlives the ``asyncio.run`` it first ran in: the same typed error."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client: Any = AsyncIOMotorClient(mongo_url)
    store = MongoSessionStore(client=client, database=unique_name("motorloop"))
    try:
        asyncio.run(store.append(KEY, _entries(1)))  # binds the client to this loop
        with pytest.raises(StoreUnavailableError, match=r"load on .*event loop.*url="):
            asyncio.run(store.load(KEY))
    finally:
        client.close()


def test_constructor_needs_exactly_one_connection_source() -> None:
    """Neither or both of ``client`` and ``url`` is a clear options error."""
    with pytest.raises(InvalidStoreOptionsError):
        MongoSessionStore()
    with pytest.raises(InvalidStoreOptionsError):
        MongoSessionStore(url="mongodb://h", client=AsyncMongoMockClient())
    with pytest.raises(InvalidStoreOptionsError, match="max_entry_bytes"):
        MongoSessionStore(url="mongodb://h", max_entry_bytes=0)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"database": "t6.0.3"}, "forbids"),
        ({"database": ""}, "non-empty"),
        ({"database": "admin"}, "reserved"),
        ({"database": "d" * 64}, "64 bytes"),
        ({"collection_prefix": "$x"}, "collection_prefix"),
        ({"collection_prefix": "a.b"}, "collection_prefix"),
    ],
)
def test_a_database_or_prefix_mongodb_refuses_is_an_options_error(
    options: dict[str, str], named: str
) -> None:
    """Refused when the store is made, as the builder and the CLI refuse it, not at first use.

    (A database name with a dot reached the server, and came back as ``StoreUnavailableError``.)
    """
    with pytest.raises(InvalidStoreOptionsError, match=named):
        MongoSessionStore(url="mongodb://h", **options)


async def test_unreachable_server_names_host_not_password() -> None:
    """Connection failures are typed, short, name the host and never show the password."""
    store = MongoSessionStore(
        url="mongodb://app:pw-SECRET-1@127.0.0.1:9/?serverSelectionTimeoutMS=300"
    )
    with pytest.raises(StoreUnavailableError) as caught:
        await store.connect()
    message = str(caught.value)
    assert "127.0.0.1:9" in message
    assert "pw-SECRET-1" not in message
    assert "Timeout: 0.3s" in message  # the URL's own timeout wins over our default
    assert "Topology Description" not in message
    assert caught.value.__cause__ is None
    await store.close()


@pytest.mark.live
async def test_injected_clients_are_named_by_host(mongo_url: str) -> None:
    """Errors name the host of an injected PyMongo or Motor client, not a class name."""
    from motor.motor_asyncio import AsyncIOMotorClient

    host = mongo_url.split("://", 1)[1].split("/")[0].split("@")[-1].split("?")[0]
    pymongo_client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    motor_client: Any = AsyncIOMotorClient(mongo_url)
    try:
        assert MongoSessionStore(client=pymongo_client).hosts == host
        assert MongoSessionStore(client=motor_client).hosts == host
    finally:
        await pymongo_client.close()
        motor_client.close()


WRITER = """
import asyncio, json, sys
from session_store_mongo import MongoSessionStore

async def main(url, database, writer, batches):
    async with MongoSessionStore(url=url, database=database) as store:
        key = {"project_key": "proj", "session_id": "shared"}
        for b in range(batches):
            batch = [
                {"type": "user", "uuid": f"p{writer}-{b}-{i}", "w": writer, "n": b * 3 + i,
                 "lastPrompt": f"p{writer}-{b}"}
                for i in range(3)
            ]
            await store.append(key, batch)
            if b % 4 == 0:
                await store.append(key, batch)  # the SDK's retry

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


@pytest.mark.live
async def test_two_processes_append_to_one_session(mongo_url: str) -> None:
    """Two OS processes writing one session lose and duplicate nothing; summaries agree."""
    database = unique_name("mp")
    batches = 40
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            mongo_url,
            database,
            str(w),
            str(batches),
            cwd=REPO_ROOT,
        )
        for w in range(2)
    ]
    assert [await p.wait() for p in procs] == [0, 0]
    key: SessionKey = {"project_key": "proj", "session_id": "shared"}
    async with MongoSessionStore(url=mongo_url, database=database) as store:
        loaded = await store.load(key) or []
        uuids = [e["uuid"] for e in loaded]
        assert len(uuids) == len(set(uuids)) == 2 * batches * 3
        for writer in range(2):
            own = [e["n"] for e in loaded if e["w"] == writer]
            assert own == list(range(batches * 3))
        [summary] = await store.list_session_summaries("proj")
        assert summary["data"] == fold_session_summary(None, key, loaded)["data"]
        assert json.dumps(summary["data"])
        doc = await store_collection(store.client, store, "sessions").find_one({"subpath": ""})
        assert (doc["count"], doc["settled"]) == (len(loaded), doc["seq"])
        await store.client.drop_database(database)


async def test_without_the_sdk_only_summaries_are_unavailable(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without claude-agent-sdk, appends and loads work; summaries name what to install."""
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # makes the import fail
    store = make_store()
    await store.append(KEY, _entries(2))
    assert await store.load(KEY) == _entries(2)
    with pytest.raises(
        SummariesUnavailableError, match=r"pip install 'claude-agent-sdk>=0\.1\.65'"
    ):
        await store.list_session_summaries("proj")
    monkeypatch.undo()
    [summary] = await store.list_session_summaries("proj")  # caught up once the SDK is back
    assert summary["data"] == fold_session_summary(None, KEY, _entries(2))["data"]
