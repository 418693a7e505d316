"""``append_new``: many new transcripts stored whole in three round trips, exactly as appends.

On the server both ways: in one transaction, and step by step (``transactions=False``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import bson
import pytest
from claude_agent_sdk import fold_session_summary
from mongomock_motor import AsyncMongoMockClient
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne

from session_store_mongo import MongoSessionStore, NewTranscript
from session_store_mongo.layout import key_fields
from session_store_mongo.summary import Settlement
from session_store_protocol import InvalidEntryError, InvalidStoreOptionsError, SessionKey
from tests.support import CommandLog, store_collection, unique_name


def _key(n: int) -> SessionKey:
    return {"project_key": "bulk", "session_id": f"s{n}"}


def _entries(prefix: str, n: int) -> list[Any]:
    return [
        {"type": "user", "uuid": f"{prefix}-{i}", "lastPrompt": f"{prefix} {i}", "cwd": "/w"}
        for i in range(n)
    ]


_LIVE = pytest.mark.live
_STEPS = ["mongomock", pytest.param("steps", marks=_LIVE)]


@pytest.fixture(
    params=[
        *_STEPS,
        pytest.param("transaction", marks=_LIVE),
        pytest.param("motor", marks=_LIVE),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MongoSessionStore]:
    """A store in process (mongomock, step by step) and on the server, both ways.

    The transaction also through an injected Motor client.
    """
    async for opened in _opened(request):
        yield opened


@pytest.fixture(params=_STEPS)
async def store_in_steps(request: pytest.FixtureRequest) -> AsyncIterator[MongoSessionStore]:
    """A store that creates transcripts step by step (mongomock, ``transactions=False``)."""
    async for opened in _opened(request):
        yield opened


async def _opened(request: pytest.FixtureRequest) -> AsyncIterator[MongoSessionStore]:
    database = unique_name("new")
    if request.param == "mongomock":
        yield MongoSessionStore(client=AsyncMongoMockClient(), database=database)
        return
    if request.param == "motor":
        motor: Any = AsyncIOMotorClient(request.getfixturevalue("mongo_url"))
        yield MongoSessionStore(client=motor, database=database)
        await motor.drop_database(database)
        motor.close()
        return
    live = MongoSessionStore(
        url=request.getfixturevalue("mongo_url"),
        database=database,
        transactions=request.param == "transaction",
    )
    yield live
    await live.client.drop_database(database)
    await live.close()


@pytest.fixture(params=[True, False], ids=["transaction", "steps"])
async def counted(
    mongo_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[MongoSessionStore, CommandLog]]:
    """A store on the server whose client records its commands, both ways."""
    log = CommandLog()
    live = MongoSessionStore(
        url=mongo_url,
        database=unique_name("new"),
        client_options={"event_listeners": [log]},
        transactions=request.param,
    )
    yield live, log
    await live.client.drop_database(live.database)
    await live.close()


async def test_new_transcripts_are_stored_and_settled_as_appends(
    store: MongoSessionStore,
) -> None:
    """Each transcript loads back whole; counts, listings and summaries as after an append."""
    new = store
    batches = [(_key(n), _entries(f"e{n}", n + 1)) for n in range(5)]
    assert await new.append_new(batches) == [1, 2, 3, 4, 5]
    for key, entries in batches:
        assert await new.load(key) == entries
        assert await new.size(key) == len(entries)
    listed = {item["session_id"] for item in await new.list_sessions("bulk")}
    assert listed == {f"s{n}" for n in range(5)}
    summaries = {s["session_id"]: s["data"] for s in await new.list_session_summaries("bulk")}
    for key, entries in batches:
        assert summaries[key["session_id"]] == fold_session_summary(None, key, entries)["data"]
    await new.append(_key(4), _entries("more", 2))  # the transcript goes on as any other
    assert await new.size(_key(4)) == 7


@pytest.mark.live
async def test_three_commands_for_any_number_of_transcripts(
    counted: tuple[MongoSessionStore, CommandLog], request: pytest.FixtureRequest
) -> None:
    """Three commands for any number of transcripts, and each document ends settled.

    In a transaction: insert the documents settled, insert the entries, commit. Step by step
    (``transactions=False``): create the documents, insert the entries, settle them. A store
    without encryption settings reads first, once per project, whether the project is
    encrypted (it then refuses to create transcripts in clear): one indexed read per mark.
    """
    new, log = counted
    await new.connect()
    log.clear()
    assert await new.append_new([(_key(n), _entries(f"e{n}", 3)) for n in range(20)]) == [3] * 20
    last = "commitTransaction" if request.node.callspec.params["counted"] else "update"
    assert log.names == ["find", "find", "find", "insert", "insert", last]
    doc = await store_collection(new.client, new, "sessions").find_one(key_fields(_key(7)))
    assert doc["settled"] == doc["seq"] == doc["count"] == doc["summary_seq"] == 3
    assert "pending_since" not in doc


async def test_an_entry_over_the_document_limit_is_stored_in_chunks(
    store: MongoSessionStore,
) -> None:
    """A transcript with an entry past 16 MB, among small ones: every transcript whole.

    Its entry is stored in chunks, step by step; the others are stored as usual (on the
    server: in a transaction), none of them reported stored without being stored.
    """
    new = store
    huge = {"type": "user", "uuid": "huge", "text": "y" * (17 * 1024 * 1024)}
    batches = [(_key(n), _entries(f"e{n}", 2)) for n in range(4)]
    batches.insert(2, (_key(9), [*_entries("before", 1), huge]))
    assert await new.append_new(batches) == [2, 2, 2, 2, 2]
    for key, entries in batches:
        assert await new.load(key) == entries
    assert (await new.stats()).entries == 10


@pytest.mark.parametrize("outcome", ["aborted", "committed"])
@pytest.mark.live
async def test_a_key_held_by_another_transaction_is_waited_for(
    mongo_url: str, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another transaction holds a key (another writer's, or one a stopped process left).

    ``append_new`` says so once in the log and tries again until it ends: aborted (as the
    server aborts one left open after its lifetime), the transcripts are created whole;
    committed, that transcript exists (``None``) and the other is created.
    """
    store = MongoSessionStore(url=mongo_url, database=unique_name("new"))
    holder: Any = AsyncMongoClient(mongo_url)
    try:
        await store.connect()
        held = holder[store.database][store_collection(store.client, store, "sessions").name]
        session = holder.start_session()
        await session.start_transaction()
        await held.insert_one({**key_fields(_key(0)), "seq": 0, "count": 0}, session=session)
        creating = asyncio.ensure_future(
            store.append_new([(_key(0), _entries("a", 2)), (_key(1), _entries("b", 3))])
        )
        await asyncio.sleep(1.0)
        assert not creating.done()  # waiting on the held key, not failed, not blocked for good
        if outcome == "aborted":
            await session.abort_transaction()
        else:
            await session.commit_transaction()
        await session.end_session()
        stored = await asyncio.wait_for(creating, 10)
        assert "held by another transaction" in caplog.text
        if outcome == "aborted":
            assert stored == [2, 3]
            assert await store.load(_key(0)) == _entries("a", 2)
        else:
            assert stored == [None, 3]
        assert await store.load(_key(1)) == _entries("b", 3)
    finally:
        await holder.drop_database(store.database)
        await holder.close()
        await store.close()


@pytest.mark.parametrize("items", ["not a list", [("bulk",)], [{"key": 1}], 5])
async def test_a_call_of_the_wrong_shape_is_refused(store: MongoSessionStore, items: Any) -> None:
    """Not a list of ``NewTranscript`` or ``(key, entries)``: typed, nothing written."""
    with pytest.raises(InvalidEntryError, match="append_new takes a list"):
        await store.append_new(items)
    assert await store.list_sessions("bulk") == []


async def test_without_transactions_a_big_call_is_not_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the deployment has no transactions (mongomock), the call goes whole: one create.

    Parts of ``TRANSACTION_BYTES`` bound transactions only; cut step by step, each part would
    pay the three commands again.
    """
    from session_store_mongo import append as append_module

    store = MongoSessionStore(client=AsyncMongoMockClient(), database=unique_name("new"))
    batches = [(_key(n), _entries(f"e{n}", 4)) for n in range(6)]
    monkeypatch.setattr(append_module, "TRANSACTION_BYTES", 1)  # a part per transcript
    creates: list[int] = []
    create = append_module.Block.create

    async def counted_create(blocks: Any) -> Any:
        creates.append(len(blocks))
        return await create(blocks)

    monkeypatch.setattr(append_module.Block, "create", counted_create)
    assert await store.append_new(batches) == [4] * 6
    assert creates == [6]


@pytest.mark.live
async def test_a_big_call_is_cut_into_transactions_of_bounded_size(
    counted: tuple[MongoSessionStore, CommandLog],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most ``TRANSACTION_BYTES`` of entries a transaction; a part refused goes by steps.

    Step by step, the call is not cut: it goes whole, in three commands.

    Each transcript is whole in one part; a part holding a transcript that exists is created
    step by step, the parts before and after it still in their transactions.
    """
    from session_store_mongo import append as append_module

    new, log = counted
    batches = [(_key(n), _entries(f"e{n}", 4)) for n in range(6)]
    one = sum(len(bson.encode({"entry": entry})) for entry in batches[0][1])
    monkeypatch.setattr(append_module, "TRANSACTION_BYTES", 2 * one + one // 2)  # 2 a part
    await new.append(_key(3), _entries("held", 1))
    log.clear()
    assert await new.append_new(batches) == [4, 4, 4, None, 4, 4]
    in_transactions = request.node.callspec.params["counted"]
    assert log.names.count("commitTransaction") == (2 if in_transactions else 0)
    assert log.names.count("abortTransaction") == (1 if in_transactions else 0)
    # One settling write: the refused part's, or the whole call's step by step (not a part's).
    assert log.names.count("update") == 1
    for key, entries in batches:
        assert await new.load(key) == (_entries("held", 1) if key == _key(3) else entries)
    assert (await new.stats()).entries == 21


@pytest.mark.live
@pytest.mark.parametrize("transactions", [True, False], ids=["transaction", "steps"])
async def test_a_follower_gets_what_append_new_creates(mongo_url: str, transactions: bool) -> None:
    """A follower waiting on a key gets the transcripts ``append_new`` creates, in order."""
    database = unique_name("new")
    writer = MongoSessionStore(url=mongo_url, database=database, transactions=transactions)
    reader = MongoSessionStore(url=mongo_url, database=database)
    sub: SessionKey = {**_key(0), "subpath": "subagents/agent-a"}
    try:
        await reader.connect()
        async with reader.follow(_key(0), include_subkeys=True) as follower:
            waiting = asyncio.ensure_future(follower.__anext__())
            await asyncio.sleep(0.3)  # the follower is waiting on the key
            batches = [(_key(0), _entries("main", 3)), (sub, _entries("sub", 2))]
            assert await writer.append_new(batches) == [3, 2]
            items = [await asyncio.wait_for(waiting, 10)]
            items += [await asyncio.wait_for(follower.__anext__(), 10) for _ in range(4)]
        per_transcript = {
            subpath: [str(item.entry["uuid"]) for item in items if item.subpath == subpath]
            for subpath in (None, sub["subpath"])
        }
        assert per_transcript == {
            None: ["main-0", "main-1", "main-2"],
            sub["subpath"]: ["sub-0", "sub-1"],
        }
    finally:
        await writer.client.drop_database(database)
        await writer.close()
        await reader.close()


@pytest.mark.live
async def test_a_transaction_stores_what_the_steps_store(mongo_url: str) -> None:
    """The same transcripts through a transaction and step by step: the same documents.

    Counts, sizes, positions and the folded summary are what the settling compare-and-set
    writes; only ids and clocks differ (and the random ``dedupe`` of an entry without uuid).
    """
    used = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    batches = [
        NewTranscript(
            _key(n), [*_entries(f"e{n}", n + 1), {"type": "x", "payload": "\u2028 \ud800"}], used
        )
        for n in range(4)
    ]
    batches.append(
        NewTranscript({**_key(9), "subpath": "subagents/agent-a"}, _entries("sub", 2), used)
    )
    stores = [
        MongoSessionStore(url=mongo_url, database=unique_name("new"), transactions=way)
        for way in (True, False)
    ]
    clocks = {"_id": 0, "created": 0, "settled_at": 0, "summary_at": 0, "reserved_by": 0}
    try:
        seen = []
        for store in stores:
            assert await store.append_new(batches) == [len(b) for _, b, _ in batches]
            sessions = store_collection(store.client, store, "sessions")
            entries = store_collection(store.client, store, "entries")
            seen.append(
                (
                    await sessions.find({}, clocks, sort=[("session_id", 1)]).to_list(),
                    await entries.find(
                        {}, {"_id": 0, "dedupe": 0}, sort=[("session_id", 1), ("seq", 1)]
                    ).to_list(),
                )
            )
        assert seen[0] == seen[1]
        assert len(seen[0][0]) == 5
        assert len(seen[0][1]) == sum(len(b) for _, b, _ in batches)
    finally:
        for store in stores:
            await store.client.drop_database(store.database)
            await store.close()


@pytest.mark.live
async def test_an_append_during_the_transaction_waits_for_it(
    mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``append`` to a transcript the transaction is creating waits, then appends after it.

    It does not see the uncommitted document; creating its own, it waits on the transaction's
    key until the commit, then finds the transcript whole and appends after it: its entries
    the transaction stored are skipped, the others follow, every count exact.
    """
    store = MongoSessionStore(url=mongo_url, database=unique_name("new"))
    key, other = _key(0), _key(1)
    created = _entries("first", 3)
    appended = [*created[1:], *_entries("then", 2)]
    racing: list[asyncio.Task[None]] = []
    try:
        await store.connect()
        entries = store._wired.collections.entries
        insert_many = entries.insert_many

        async def racing_insert(*args: Any, **kwargs: Any) -> Any:
            if not racing:  # the transaction's insert: the document is in, uncommitted
                racing.append(asyncio.create_task(store.append(key, appended)))
                await asyncio.sleep(0.5)  # the append is at the server, waiting on our key
                assert not racing[0].done()
            return await insert_many(*args, **kwargs)

        monkeypatch.setattr(entries, "insert_many", racing_insert)
        assert await store.append_new([(key, created), (other, _entries("alone", 2))]) == [3, 2]
        monkeypatch.undo()
        await racing[0]
        assert await store.load(key) == [*created, *_entries("then", 2)]
        sessions = store_collection(store.client, store, "sessions")
        doc = await sessions.find_one(key_fields(key))
        assert (doc["settled"], doc["count"], doc["summary_seq"]) == (doc["seq"], 5, doc["seq"])
        [summary] = [
            s for s in await store.list_session_summaries("bulk") if s["session_id"] == "s0"
        ]
        assert summary["data"]["last_prompt"] == "then 1"
    finally:
        await store.client.drop_database(store.database)
        await store.close()


async def test_a_transcript_that_exists_is_left_alone(
    store: MongoSessionStore,
) -> None:
    """An existing transcript is reported ``None`` and untouched; the others are stored."""
    new = store
    await new.append(_key(1), _entries("held", 2))
    counts = await new.append_new([(_key(n), _entries(f"e{n}", 2)) for n in range(3)])
    assert counts == [2, None, 2]
    assert await new.load(_key(1)) == _entries("held", 2)
    assert await new.load(_key(2)) == _entries("e2", 2)


async def test_a_uuid_twice_in_a_transcript_is_stored_once(
    store: MongoSessionStore,
) -> None:
    """A repeated uuid is skipped, as append skips it; the transcripts after it are whole."""
    new = store
    twice = [*_entries("d", 2), _entries("d", 1)[0], *_entries("z", 1)]
    counts = await new.append_new([(_key(0), twice), (_key(1), _entries("after", 3))])
    assert counts == [3, 3]
    assert await new.load(_key(0)) == [*_entries("d", 2), *_entries("z", 1)]
    assert await new.size(_key(0)) == 3
    assert await new.load(_key(1)) == _entries("after", 3)
    [summary] = [s for s in await new.list_session_summaries("bulk") if s["session_id"] == "s0"]
    assert summary["data"]["last_prompt"] == "z 0"


async def test_a_bad_entry_writes_nothing(store: MongoSessionStore) -> None:
    """One malformed entry refuses the whole call, before anything is written."""
    new = store
    with pytest.raises(InvalidEntryError):
        await new.append_new([(_key(0), _entries("ok", 2)), (_key(1), [{"no": "type"}])])
    assert await new.list_sessions("bulk") == []
    assert await new.append_new([(_key(0), []), (_key(1), _entries("x", 1))]) == [0, 1]


_NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)
_STATES: list[dict[str, Any]] = [
    {"settled": 0, "seq": 3, "summary_version": 0, "pending_since": _NOW},
    {"settled": 0, "seq": 4, "summary_version": 0, "pending_since": _NOW},
    {"settled": 2, "seq": 3, "summary_version": 0},
    {"seq": 3, "pending_since": _NOW},
    {"settled": 0, "seq": 3, "summary_version": 1, "count": 5, "summary": {"t": 1}},
]
_SETTLEMENTS = [
    Settlement(
        {"settled": 0, "seq": 3, "summary_version": 0},
        {
            "$set": {"settled": 3, "summary": {"t": "$HOME", "n": [1, {"a": None}]}},
            "$inc": {"count": 3, "summary_version": 1},
            "$unset": {"pending_since": ""},
        },
    ),
    Settlement(
        {"settled": {"$in": [0, None]}, "summary_version": {"$exists": False}},
        {"$set": {"settled": 3}, "$inc": {"bytes": 7}, "$currentDate": {"settled_at": True}},
    ),
]


@pytest.mark.live
@pytest.mark.parametrize("settlement", _SETTLEMENTS, ids=["equalities", "operators"])
async def test_a_settlement_on_the_key_does_what_the_plain_one_does(
    mongo_url: str, settlement: Settlement
) -> None:
    """``Settlement.on_key`` applies exactly when the plain compare-and-set would, and the same.

    Each document state is written four times, one copy settled each way the store sends a
    settlement: plain, and on the key through an update, a client ``bulkWrite`` (an append's
    settling) and a ``findAndModify`` (a catch-up's). The copies end equal (but for the
    server's clock), and each form reports a change for the same states. Where it applies,
    ``Settlement.applied`` (a new document, inserted settled) computes the same document.
    """
    client: Any = AsyncMongoClient(mongo_url)
    collection = client[unique_name("onkey")]["sessions"]

    def on_key(ident: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return Settlement({**settlement.filter, **ident}, settlement.update).on_key()

    try:
        for n, state in enumerate(_STATES):
            plain, keyed, bulk, found = idents = [
                {"project_key": "p", "session_id": f"{way}{n}", "subpath": ""}
                for way in ("plain", "keyed", "bulk", "found")
            ]
            await collection.insert_many([{**ident, **state} for ident in idents])
            applied = await collection.update_one({**settlement.filter, **plain}, settlement.update)
            filter_, pipeline = on_key(keyed)
            assert filter_ == keyed
            changed = await collection.update_one(filter_, pipeline)
            sent = await client.bulk_write(
                [UpdateOne(*on_key(bulk), namespace=collection.full_name)]
            )
            assert changed.modified_count == sent.modified_count == applied.modified_count, state
            after = await collection.find_one_and_update(
                *on_key(found), return_document=ReturnDocument.AFTER
            )
            clockless = {"_id": 0, "session_id": 0, "settled_at": 0}
            ends = [await collection.find_one(ident, clockless) for ident in idents]
            assert all(end == ends[0] for end in ends), state
            assert {name: after[name] for name in ends[3]} == ends[3]
            dated = [await collection.find_one(ident) for ident in idents]
            assert len({"settled_at" in doc for doc in dated}) == 1, state
            if applied.modified_count:  # what append_new's transaction inserts instead
                inserted = settlement.applied({**plain, **state})
                assert ("settled_at" in inserted) == ("settled_at" in dated[0])
                kept = {name: value for name, value in inserted.items() if name not in clockless}
                assert bson.decode(bson.encode(kept)) == ends[0], state
    finally:
        await client.drop_database(collection.database.name)
        await client.close()


async def test_an_mtime_that_is_no_datetime_is_refused_as_set_mtime_refuses_it(
    store: MongoSessionStore,
) -> None:
    """``NewTranscript.mtime`` is checked as ``set_mtime`` checks it: typed, nothing written."""
    new = store
    with pytest.raises(InvalidStoreOptionsError, match="mtime must be a datetime, got str"):
        await new.append_new([NewTranscript(_key(0), _entries("t", 1), "yesterday")])
    assert await new.list_sessions("bulk") == []
    used = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert await new.append_new([NewTranscript(_key(0), _entries("t", 1), used)]) == [1]
    [listed] = await new.list_sessions("bulk")
    assert listed["mtime"] == int(used.timestamp() * 1000)
    with pytest.raises(InvalidStoreOptionsError, match="mtime must be a datetime, got int"):
        await new.set_mtime(_key(0), 5)


async def test_a_transcript_whose_whole_batch_another_writer_stored_first_is_settled(
    store_in_steps: MongoSessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry refused because another writer stored it first: the block still settles.

    Two imports of one file at once: ``append_new`` creates the transcript, and an ``append``
    of the same entries lands before its insert. Its numbers get holes; the transcript is
    settled at once (not after the lease), counted once, and listed with its summary.
    (A transaction leaves no such window: see the test of an append during one.)
    """
    from session_store_mongo import append as append_module

    store = store_in_steps

    key, other = _key(0), _key(1)
    entries = _entries("raced", 4)
    insert_together = append_module.insert_together

    async def overtaken(blocks: Any) -> Any:
        await store.append(key, entries)  # the other import, between create and insert
        return await insert_together(blocks)

    monkeypatch.setattr(append_module, "insert_together", overtaken)
    stored = await store.append_new([(key, entries), (other, _entries("alone", 2))])
    assert stored == [0, 2]
    sessions = store_collection(store.client, store, "sessions")
    for ident, count in ((key_fields(key), 4), (key_fields(other), 2)):
        doc = await sessions.find_one(ident)
        assert doc is not None
        assert (doc["settled"], doc["count"]) == (doc["seq"], count), doc
    assert await store.load(key) == entries
    listed = {summary["session_id"] for summary in await store.list_session_summaries("bulk")}
    assert listed == {"s0", "s1"}
