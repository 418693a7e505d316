"""Streaming a transcript: ``MongoSessionStore.iter_entries`` in order, resumable, bounded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from session_store_mongo import MongoSessionStore, StoredEntry
from session_store_mongo.store import STREAM_BATCH
from session_store_protocol import InvalidKeyError, SessionKey, StoreClosedError
from tests.support import CommandLog, encryption_settings, unique_name

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
SUB: SessionKey = {**KEY, "subpath": "subagents/agent-1"}


def _entries(n: int, prefix: str = "e") -> list[Any]:
    return [{"type": "user", "uuid": f"{prefix}{i}", "n": i} for i in range(n)]


async def _all(items: AsyncIterator[StoredEntry]) -> list[StoredEntry]:
    return [item async for item in items]


@pytest.fixture(
    params=[
        "mongomock",
        pytest.param("live", marks=pytest.mark.live),
        pytest.param("encrypted", marks=pytest.mark.live),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MongoSessionStore]:
    """A Mongo store in process (mongomock-motor), on the live server, and encrypted there."""
    database = unique_name("iter")
    if request.param == "mongomock":
        yield MongoSessionStore(client=AsyncMongoMockClient(), database=database)
        return
    url = request.getfixturevalue("mongo_url")
    encryption = encryption_settings(database) if request.param == "encrypted" else None
    live = MongoSessionStore(url=url, database=database, encryption=encryption)
    yield live
    await live.client.drop_database(database)
    await live.close()


@pytest.fixture
async def listened(mongo_url: str) -> AsyncIterator[tuple[MongoSessionStore, CommandLog]]:
    """A live store whose client reports every command it sends."""
    listener = CommandLog()
    database = unique_name("iter")
    live = MongoSessionStore(
        url=mongo_url, database=database, client_options={"event_listeners": [listener]}
    )
    await live.connect()
    yield live, listener
    await live.client.drop_database(database)
    await live.close()


async def test_streams_in_append_order_with_positions(store: MongoSessionStore) -> None:
    """Every entry once, in append order, each with its increasing seq and its subpath."""
    await store.append(KEY, _entries(3, "a"))
    await store.append(KEY, _entries(4, "b"))
    await store.append(SUB, _entries(2, "s"))
    items = await _all(store.iter_entries(KEY))
    assert [item.entry for item in items] == _entries(3, "a") + _entries(4, "b")
    seqs = [item.seq for item in items]
    assert seqs == sorted(set(seqs))
    assert {item.subpath for item in items} == {None}
    sub = await _all(store.iter_entries(SUB))
    assert [(item.subpath, item.entry) for item in sub] == [
        ("subagents/agent-1", entry) for entry in _entries(2, "s")
    ]
    assert [item.entry for item in items] == await store.load(KEY)


async def test_resumes_after_a_position(store: MongoSessionStore) -> None:
    """``after=seq`` yields exactly the entries behind that seq; the last seq yields nothing."""
    await store.append(KEY, _entries(10))
    items = await _all(store.iter_entries(KEY))
    for cut in (0, 3, 9):
        rest = await _all(store.iter_entries(KEY, after=items[cut].seq))
        assert rest == items[cut + 1 :]
    assert await _all(store.iter_entries(KEY, after=0)) == items


async def test_unknown_key_yields_nothing(store: MongoSessionStore) -> None:
    """A transcript never written streams as empty (``load`` says ``None``)."""
    assert await _all(store.iter_entries(KEY)) == []


@pytest.mark.parametrize("after", [-1, "3", 2.0, True])
def test_bad_position_is_refused_at_the_call(after: Any) -> None:
    """``after`` must be a seq (an int >= 0): a typed error, before anything is sent."""
    store = MongoSessionStore(client=AsyncMongoMockClient(), database="never")
    with pytest.raises(InvalidKeyError, match="after must be a seq"):
        store.iter_entries(KEY, after=after)


def test_bad_key_is_refused_at_the_call() -> None:
    """A malformed key fails when ``iter_entries`` is called, not on the first ``anext``."""
    store = MongoSessionStore(client=AsyncMongoMockClient(), database="never")
    with pytest.raises(InvalidKeyError):
        store.iter_entries({"project_key": "p", "session_id": ""})


@pytest.mark.live
async def test_streams_in_bounded_replies(listened: tuple[MongoSessionStore, CommandLog]) -> None:
    """One ``find`` brings the first entry, ``getMore`` the rest: at most STREAM_BATCH a reply."""
    store, listener = listened
    await store.append(KEY, _entries(STREAM_BATCH + 10))
    listener.clear()
    items = store.iter_entries(KEY)
    first = await anext(items)
    assert first.entry == _entries(1)[0]
    assert listener.names == ["find"]
    rest = await _all(items)
    assert len(rest) == STREAM_BATCH + 9
    assert listener.names == ["find", "getMore"]
    batch_sizes = [c["batchSize"] for c in listener.commands if "batchSize" in c]
    assert batch_sizes
    assert max(batch_sizes) <= STREAM_BATCH


@pytest.mark.live
async def test_closing_early_closes_the_cursor(
    listened: tuple[MongoSessionStore, CommandLog],
) -> None:
    """Leaving the loop early (``aclosing``) kills the server-side cursor at once."""
    store, listener = listened
    await store.append(KEY, _entries(STREAM_BATCH + 10))
    listener.clear()
    async with contextlib.aclosing(store.iter_entries(KEY)) as items:
        async for item in items:
            if item.entry["n"] == 5:
                break
    assert listener.names == ["find", "killCursors"]


@pytest.mark.parametrize("after", [2**63, 10**30])
def test_a_position_past_what_a_seq_can_be_is_refused_typed(after: int) -> None:
    """A seq is a BSON int64: a bigger ``after`` is a typed error, not the driver's overflow."""
    store = MongoSessionStore(client=AsyncMongoMockClient(), database="never")
    with pytest.raises(InvalidKeyError, match="after must be a seq"):
        store.iter_entries(KEY, after=after)
    with pytest.raises(InvalidKeyError, match="after must be"):
        store.follow(KEY, after=after)
    with pytest.raises(InvalidKeyError, match="after must be"):
        store.follow(KEY, after={None: after})


async def test_the_highest_seq_is_a_position_past_the_end(store: MongoSessionStore) -> None:
    """``after`` at the largest seq is accepted and yields nothing."""
    await store.append(KEY, _entries(3))
    assert await _all(store.iter_entries(KEY, after=2**63 - 1)) == []


@pytest.mark.live
async def test_closing_the_store_while_iterating_says_it_was_closed(mongo_url: str) -> None:
    """The iterator's next read fails with ``StoreClosedError``, not as a server failure."""
    store = MongoSessionStore(url=mongo_url, database=unique_name("closing"))
    try:
        await store.append(KEY, _entries(STREAM_BATCH + 5))
        items = store.iter_entries(KEY)
        assert (await anext(items)).seq == 1  # the first batch is read
        await store.close()
        with pytest.raises(StoreClosedError, match="iter_entries: this MongoSessionStore was"):
            await _all(items)
    finally:
        async with MongoSessionStore(url=mongo_url, database=store.database) as cleaner:
            await cleaner.client.drop_database(store.database)
