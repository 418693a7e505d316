"""Faults and bad input: failed and lost append steps, unreachable servers, injection, bad batches.

Run with ``make test`` (it provides ``SECANTUSD``); the fault tests start a SecantusDB of their
own with ``--enable-test-commands`` so that failpoints never reach the shared server. Each fault
hits one step of an append, in the order the store takes them: ``reserve`` (the ``$inc``
``findAndModify``), ``insert`` (``insert_many``) and ``summary`` (the compare-and-set
``findAndModify`` that also reports the block as landed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import fold_session_summary
from devtools.secantus import SecantusServer, free_port
from pymongo import AsyncMongoClient

from session_store_mongo import MongoSessionStore, mongo_session_store_builder
from session_store_mongo.codec import prepare_entry
from session_store_mongo.layout import key_fields
from session_store_mongo.summary import DEFAULT_LEASE_MS
from session_store_protocol import SessionKey, SessionStoreEntry, StoreRegistry
from session_store_protocol.errors import (
    EntryTooLargeError,
    InvalidEntryError,
    InvalidKeyError,
    InvalidStoreOptionsError,
    StoreUnavailableError,
)
from tests.servers import (
    FaultedCommands,
    ReplyDropper,
    assert_each_once_in_order,
    fail_command,
    failpoint_off,
    running_server,
    transcript_batch,
)
from tests.support import CommandLog, StoreFactory, store_collection, unique_name

live = pytest.mark.live

_STEPS = {
    "reserve": ("findAndModify", 0),
    "insert": ("insert", 0),
    "fence": ("insert", 0),  # the insert fails, then the fence's insert (times=2)
    "summary": ("findAndModify", 1),
    "insert+settle": ("bulkWrite", 0),
}
"""Each append step: the command it sends, and how many of that command come before it.

``insert`` and ``summary`` are the steps sent apart (a store with ``bulk_write=False``, as on a
server before MongoDB 8.0); ``insert+settle`` is the one ``bulkWrite`` that carries both."""
_APART = {"insert", "fence", "summary"}


@dataclass(frozen=True)
class Fault:
    """One way an append step can fail, and what the caller sees."""

    step: str
    failpoint: dict[str, Any] | None = None
    """``failCommand`` data, or ``None`` for a reply lost after the command ran."""
    times: int = 1
    raises: bool = True
    """Whether the caller gets ``StoreUnavailableError`` (else the driver's retry succeeds)."""
    impatient: bool = False
    """Through the store that gives up on a reply after 1 s (``socketTimeoutMS``) and whose
    lease is 0, so that what a lost writer left undecided is fenced at the next settling."""
    fresh: bool = False
    """Fault the transcript's first append (else its second)."""

    async def arm(self, admin: AsyncMongoClient[Any], proxy: ReplyDropper) -> None:
        command, skip = _STEPS[self.step]
        if self.failpoint is None:
            proxy.lose_replies(command, times=self.times, skip=skip)
        else:
            await fail_command(admin, [command], times=self.times, skip=skip, **self.failpoint)


_CLOSE = {"closeConnection": True}
_RETRYABLE = {"errorCode": 6}  # HostUnreachable: the driver retries the write once
_FATAL = {"errorCode": 2}  # BadValue: not retryable, the caller sees it
_WRITE_CONCERN = {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}}
_BLOCKED = {"blockConnection": True, "blockTimeMS": 2500}
"""The command waits 2.5 s on the server, then runs: the client gave up after 1 s (and so did
the driver's retry), and the write lands late."""
_BLOCKED_SECONDS = 2.5
_BSON_LIMIT = 16 * 1024 * 1024

FAULTS = {
    "reserve-dropped-once": Fault("reserve", _CLOSE, raises=False),
    "reserve-dropped-twice": Fault("reserve", _CLOSE, times=2),
    "reserve-retryable-error": Fault("reserve", _RETRYABLE, raises=False),
    "reserve-error": Fault("reserve", _FATAL),
    "reserve-reply-lost-once": Fault("reserve", raises=False),
    "reserve-reply-lost-twice": Fault("reserve", times=2),
    "reserve-write-concern-error": Fault("reserve", _WRITE_CONCERN),
    "insert-dropped-once": Fault("insert", _CLOSE, raises=False),
    "insert-dropped-twice": Fault("insert", _CLOSE, times=2),
    "insert-retryable-error": Fault("insert", _RETRYABLE, raises=False),
    "insert-error": Fault("insert", _FATAL),
    "insert-reply-lost-once": Fault("insert", raises=False),
    # The insert ran, its replies were lost: the fence finds every entry stored, so the append
    # succeeds (raising would make the SDK retry and duplicate entries without uuid).
    "insert-reply-lost-twice": Fault("insert", times=2, raises=False),
    # The insert ran; a write concern error on insert_many is not an insert failure.
    "insert-write-concern-error": Fault("insert", _WRITE_CONCERN, raises=False),
    "summary-dropped-once": Fault("summary", _CLOSE, raises=False),
    # The entries are stored when the summary step fails: the append succeeds (a retry would
    # duplicate entries without uuid) and the summary catches up later.
    "summary-dropped-twice": Fault("summary", _CLOSE, times=2, raises=False),
    "summary-error": Fault("summary", _FATAL, raises=False),
    "summary-reply-lost-twice": Fault("summary", times=2, raises=False),
    # Issue 10, item 1: the insert (and the driver's retry) land after the client gave up.
    # The fence gets there first: the late inserts fail, and the counts are right.
    "insert-blocked": Fault("insert", _BLOCKED, times=2, impatient=True),
    "insert-blocked-fresh": Fault("insert", _BLOCKED, times=2, impatient=True, fresh=True),
    # The reservation lands after the client gave up: nobody knows the block, which stays
    # undecided until the lease is over, then is fenced and settled empty.
    "reserve-blocked": Fault("reserve", _BLOCKED, times=2, impatient=True),
    # The settling write lands late: the append succeeded; the late write finds the block
    # settled already, or settles it itself, and counts it once either way.
    "summary-blocked": Fault("summary", _BLOCKED, times=2, raises=False, impatient=True),
    # The insert fails and so does the fence: the block stays undecided until the lease.
    "fence-error": Fault("fence", _FATAL, times=2, impatient=True),
}
# The insert's faults again on the one command that inserts and settles (MongoDB 8.0+), with
# the same outcome: a lost reply finds the entries stored (their own _id) and the block settled,
# or the fence finds them; held past the client's timeout, the command lands after the fence,
# its first insert fails on a hole and, ordered, the settling after it never applies.
FAULTS.update(
    {
        name.replace("insert-", "bulk-", 1): dataclasses.replace(fault, step="insert+settle")
        for name, fault in FAULTS.items()
        if fault.step == "insert"
    }
)


@pytest.fixture(scope="module")
def fault_server(secantusd: Path) -> Iterator[SecantusServer]:
    """A SecantusDB of this module's own, with ``configureFailPoint`` enabled."""
    with running_server(secantusd, "--enable-test-commands") as server:
        yield server


@dataclass
class Faulty:
    """A store that reaches ``server`` through ``proxy``, and a direct admin client."""

    server: SecantusServer
    admin: AsyncMongoClient[Any]
    proxy: ReplyDropper
    stores: dict[tuple[bool, bool], MongoSessionStore]
    """By ``(impatient, apart)``: see ``Fault.impatient``; ``apart`` sends insert and settling
    as separate commands (``bulk_write=False``)."""
    faulted: FaultedCommands
    outcomes: dict[str, tuple[SessionKey, list[str]]] = field(default_factory=dict)
    """Per fault: the key it was provoked under, and the uuids appended there."""

    def store_for(self, fault: Fault) -> MongoSessionStore:
        """The store a fault is provoked through."""
        return self.stores[fault.impatient, fault.step in _APART]


@pytest.fixture(scope="module")
async def faulty(fault_server: SecantusServer) -> AsyncIterator[Faulty]:
    """A store on the fault server through a reply-losing proxy, one database per module."""
    database = unique_name("faults")
    admin: AsyncMongoClient[Any] = AsyncMongoClient(fault_server.url)
    faulted = FaultedCommands()
    async with ReplyDropper(fault_server.port) as proxy:
        stores = {}
        for impatient, apart in itertools.product((False, True), (False, True)):
            options: dict[str, Any] = {
                "serverSelectionTimeoutMS": 5000,
                "event_listeners": [faulted],
            }
            if impatient:
                options["socketTimeoutMS"] = 1000
            stores[impatient, apart] = MongoSessionStore(
                url=proxy.url,
                database=database,
                client_options=options,
                summary_lease_ms=0 if impatient else DEFAULT_LEASE_MS,
                bulk_write=not apart,
            )
        try:
            yield Faulty(fault_server, admin, proxy, stores, faulted)
        finally:
            await failpoint_off(admin)
            for store in stores.values():
                await store.close()
            await admin.drop_database(database)
            await admin.close()


async def _provoke(faulty: Faulty, name: str) -> tuple[SessionKey, list[str]]:
    """Provoke a fault once per module (the tests share its outcome); return key and uuids."""
    if name not in faulty.outcomes:
        key = _key()
        faulty.outcomes[name] = key, await _append_through(faulty, FAULTS[name], key)
    return faulty.outcomes[name]


async def _append_through(faulty: Faulty, fault: Fault, key: SessionKey) -> list[str]:
    """Append a batch, fault the next one, append it again as the SDK does, append one more."""
    session = key["session_id"]
    store = faulty.store_for(fault)
    faulty.faulted.names.clear()
    first, batch = transcript_batch(session, 0, 4), transcript_batch(session, 4, 4)
    if fault.fresh:
        first = []
    else:
        await store.append(key, first)
    await fault.arm(faulty.admin, faulty.proxy)
    if fault.raises:
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{faulty.proxy.port}"):
            await store.append(key, batch)
        await _until_blocked_writes_ran(fault)
        await failpoint_off(faulty.admin)
        await store.append(key, batch)  # the SDK retries a failed batch as it was
    else:
        await store.append(key, batch)
        await _until_blocked_writes_ran(fault)
    command, _ = _STEPS[fault.step]
    assert faulty.faulted.names.count(command) == fault.times, "the fault did not fire"
    following = transcript_batch(session, 8, 2)
    await store.append(key, following)
    return [str(entry["uuid"]) for entry in first + batch + following]


async def _until_blocked_writes_ran(fault: Fault) -> None:
    """Wait until a blocked command and the driver's retry of it have run on the server."""
    if fault.failpoint is _BLOCKED:
        await asyncio.sleep(_BLOCKED_SECONDS)


def _key() -> SessionKey:
    return {"project_key": unique_name("proj"), "session_id": unique_name("sess")}


@live
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faulted_append_is_stored_once_in_order(faulty: Faulty, fault: str) -> None:
    """A faulted append raises StoreUnavailableError or is retried; a re-append stores once."""
    key, uuids = await _provoke(faulty, fault)
    assert_each_once_in_order(await faulty.store_for(FAULTS[fault]).load(key), uuids)


@live
@pytest.mark.parametrize("fault", ["insert-write-concern-error", "bulk-write-concern-error"])
async def test_write_concern_error_on_insert_is_logged(
    faulty: Faulty, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    """Entries stored below the requested durability succeed, with a warning naming why."""
    caplog.set_level(logging.WARNING, logger="session_store_mongo")
    await _append_through(faulty, FAULTS[fault], _key())
    [warning] = [r for r in caplog.records if "write concern" in r.getMessage()]
    assert "waiting for replication timed out" in warning.getMessage()


@live
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_summary_catches_up_after_fault(faulty: Faulty, fault: str) -> None:
    """After a faulted append and the next append, the summary is the fold of the transcript."""
    key, _ = await _provoke(faulty, fault)
    store = faulty.store_for(FAULTS[fault])
    loaded = await store.load(key)
    assert loaded is not None
    [summary] = await store.list_session_summaries(key["project_key"])
    assert summary["data"] == fold_session_summary(None, key, loaded)["data"]


@live
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_size_counts_stored_entries_after_fault(faulty: Faulty, fault: str) -> None:
    """After a faulted append and its retry, size() counts the entries stored."""
    key, _ = await _provoke(faulty, fault)
    store = faulty.store_for(FAULTS[fault])
    loaded = await store.load(key)
    assert loaded is not None
    assert await store.size(key) == len(loaded)


@live
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_counters_settle_to_the_truth_after_fault(faulty: Faulty, fault: str) -> None:
    """After a fault, the retry and the next append, the counts are exactly what is stored.

    ``count`` and ``bytes`` equal the stored entries, every reserved number is settled, the
    summary has folded them all, and the session is listed: as after a run without a fault.
    """
    key, _ = await _provoke(faulty, fault)
    store = faulty.store_for(FAULTS[fault])
    loaded = await store.load(key)
    assert loaded is not None
    await store.list_session_summaries(key["project_key"])  # settles what the lease allows
    doc = await store_collection(faulty.admin, store, "sessions").find_one(key_fields(key))
    sizes = [prepare_entry(i, e, _BSON_LIMIT, None).size for i, e in enumerate(loaded)]
    assert (doc["count"], doc["bytes"]) == (len(loaded), sum(sizes))
    assert doc["settled"] == doc["seq"] == doc["summary_seq"]
    listed = await store.list_sessions(key["project_key"])
    assert [s["session_id"] for s in listed] == [key["session_id"]]


@live
async def test_summary_left_behind_is_caught_up_after_lease(faulty: Faulty) -> None:
    """A summary left behind by a failed insert is caught up once the in-flight lease ends."""
    fault = FAULTS["insert-error"]
    async with MongoSessionStore(
        url=faulty.proxy.url,
        database=faulty.store_for(fault).database,
        client_options={"serverSelectionTimeoutMS": 5000, "event_listeners": [faulty.faulted]},
        summary_lease_ms=0,
        bulk_write=False,
    ) as store:
        leased = dataclasses.replace(faulty, stores={**faulty.stores, (False, True): store})
        key = _key()
        await _append_through(leased, fault, key)
        loaded = await store.load(key)
        assert loaded is not None
        [summary] = await store.list_session_summaries(key["project_key"])
    assert summary["data"] == fold_session_summary(None, key, loaded)["data"]


@live
async def test_a_writer_behind_an_insert_and_settle_in_flight_is_settled_by_it(
    faulty: Faulty,
) -> None:
    """The one-command settling applies only with no writer reserved behind the block.

    Writer A's insert-and-settle is held on the server while writer B reserves behind it and
    stores its entries; B cannot settle (A is in front). When A's command runs, its settling
    finds B's reservation and does not apply; A then settles both blocks, so nothing is left
    unsettled, counted twice or folded out of order.
    """
    key = _key()
    session = key["session_id"]
    writer_a = faulty.stores[False, False]
    writer_b = faulty.stores[False, True]
    await writer_a.append(key, transcript_batch(session, 0, 3))
    await fail_command(faulty.admin, ["bulkWrite"], blockConnection=True, blockTimeMS=1500)
    first = asyncio.ensure_future(writer_a.append(key, transcript_batch(session, 3, 3)))
    await asyncio.sleep(0.5)  # A's command is held on the server
    await writer_b.append(key, transcript_batch(session, 6, 3))
    sessions = store_collection(faulty.admin, writer_a, "sessions")
    doc = await sessions.find_one(key_fields(key))
    assert (doc["settled"], doc["seq"]) == (3, 9)  # B waits for A, who is in flight
    await first
    await failpoint_off(faulty.admin)
    doc = await sessions.find_one(key_fields(key))
    assert doc["settled"] == doc["seq"] == doc["summary_seq"] == doc["count"] == 9
    assert "pending_since" not in doc
    loaded = await writer_a.load(key)
    assert_each_once_in_order(loaded, [f"{session}-{n:06d}" for n in range(9)])
    [summary] = await writer_a.list_session_summaries(key["project_key"])
    assert summary["data"] == fold_session_summary(None, key, loaded or [])["data"]


@live
async def test_a_server_without_bulk_write_gets_separate_commands(faulty: Faulty) -> None:
    """A server that refuses ``bulkWrite`` (CommandNotFound) gets insert and settling apart.

    Nothing of the refused command ran; the append goes on without it, and the client does not
    offer the command again.
    """
    listener = CommandLog()
    async with MongoSessionStore(
        url=faulty.server.url,
        database=faulty.store_for(FAULTS["bulk-error"]).database,
        client_options={"event_listeners": [listener]},
    ) as store:
        key = _key()
        session = key["session_id"]
        await store.append(key, transcript_batch(session, 0, 2))
        await fail_command(faulty.admin, ["bulkWrite"], errorCode=59)
        await store.append(key, transcript_batch(session, 2, 2))
        await store.append(key, transcript_batch(session, 4, 2))
        await failpoint_off(faulty.admin)
        assert listener.names.count("bulkWrite") == 2  # the first append's, then refused once
        assert_each_once_in_order(await store.load(key), [f"{session}-{n:06d}" for n in range(6)])
        assert await store.size(key) == 6


@live
@pytest.mark.parametrize(
    ("failpoint", "times"), [(_FATAL, 1), (_CLOSE, 2)], ids=["refused", "dropped-twice"]
)
async def test_new_transcripts_of_a_failed_insert_are_fenced(
    faulty: Faulty, failpoint: dict[str, Any], times: int
) -> None:
    """``append_new`` whose entries' insert fails: raised; what it created is fenced, settled.

    The caller's retry then finds those transcripts existing and appends to them: every entry
    is stored once, the counts and summaries exact, nothing waits for the lease.
    """
    async with _stepwise(faulty) as store:
        keys = [_key() for _ in range(3)]
        batches = [(key, transcript_batch(key["session_id"], 0, 3)) for key in keys]
        # The documents' insert passes; the entries' insert fails (and the driver's retry).
        await fail_command(faulty.admin, ["insert"], times=times, skip=1, **failpoint)
        with pytest.raises(StoreUnavailableError):
            await store.append_new(batches)
        await failpoint_off(faulty.admin)
        assert await store.append_new(batches) == [None, None, None]
        await _assert_whole_after_appending(faulty, store, batches)


@contextlib.asynccontextmanager
async def _stepwise(faulty: Faulty) -> AsyncIterator[MongoSessionStore]:
    """A store on the faulty server that creates new transcripts step by step."""
    store = MongoSessionStore(
        url=faulty.proxy.url,
        database=faulty.stores[False, False].database,
        client_options={"serverSelectionTimeoutMS": 5000},
        transactions=False,
    )
    try:
        yield store
    finally:
        await store.close()


async def _assert_whole_after_appending(
    faulty: Faulty, store: MongoSessionStore, batches: list[tuple[SessionKey, list[Any]]]
) -> None:
    """Append each batch again: every entry is there once, counts and summaries exact."""
    for key, batch in batches:
        await store.append(key, batch)
        loaded = await store.load(key)
        assert_each_once_in_order(loaded, [str(entry["uuid"]) for entry in batch])
        doc = await store_collection(faulty.admin, store, "sessions").find_one(key_fields(key))
        assert doc["settled"] == doc["seq"] == doc["summary_seq"]
        assert doc["count"] == 3
        summaries = await store.list_session_summaries(key["project_key"])
        [summary] = [item for item in summaries if item["session_id"] == key["session_id"]]
        assert summary["data"] == fold_session_summary(None, key, loaded or [])["data"]


@dataclass(frozen=True)
class TransactionFault:
    """One way ``append_new``'s transaction can fail, and what must follow."""

    command: str
    failpoint: dict[str, Any] | None
    """``failCommand`` data, or ``None`` for replies lost after the command ran."""
    times: int = 1
    skip: int = 0
    raises: bool = False
    """Whether the caller gets ``StoreUnavailableError`` (else the steps take over)."""
    committed: bool = False
    """Whether the transcripts exist after a raise (the commit ran, its replies were lost)."""


TRANSACTION_FAULTS = {
    # The entries' insert (after the documents') fails: aborted; created step by step.
    "insert-refused": TransactionFault("insert", _FATAL, skip=1),
    "insert-dropped": TransactionFault("insert", _CLOSE, skip=1),
    # The commit is refused, or dropped and so is its retry: it never ran, nothing is there.
    "commit-refused": TransactionFault("commitTransaction", _FATAL, raises=True),
    "commit-dropped-twice": TransactionFault("commitTransaction", _CLOSE, times=2, raises=True),
    # The commit ran, its replies were lost: everything is there, whole.
    "commit-reply-lost-twice": TransactionFault(
        "commitTransaction", None, times=2, raises=True, committed=True
    ),
}


@live
@pytest.mark.parametrize("name", TRANSACTION_FAULTS)
async def test_a_failed_transaction_leaves_all_or_nothing(faulty: Faulty, name: str) -> None:
    """``append_new`` in a transaction: whatever fails, every transcript is whole or absent.

    A failure before the commit aborts it, and the steps store the transcripts instead. A
    commit that fails is raised: nothing is listed, or (its replies lost) everything is,
    counted and summarised; calling again creates them, or finds them existing; a commit that
    never ran does not hold their keys (the session is ended on the server).
    """
    fault = TRANSACTION_FAULTS[name]
    store = faulty.stores[False, False]
    project = unique_name("proj")
    keys: list[SessionKey] = [
        {"project_key": project, "session_id": unique_name("sess")} for _ in range(3)
    ]
    batches = [(key, transcript_batch(key["session_id"], 0, 3)) for key in keys]
    if fault.failpoint is None:
        faulty.proxy.lose_replies(fault.command, times=fault.times)
    else:
        await fail_command(
            faulty.admin, [fault.command], times=fault.times, skip=fault.skip, **fault.failpoint
        )
    try:
        if fault.raises:
            with pytest.raises(StoreUnavailableError):
                await store.append_new(batches)
        else:
            assert await store.append_new(batches) == [3, 3, 3]
    finally:
        await failpoint_off(faulty.admin)
        faulty.proxy.lose_replies(fault.command, times=0)
    listed = {item["session_id"] for item in await store.list_sessions(project)}
    created = not fault.raises or fault.committed
    assert listed == ({key["session_id"] for key in keys} if created else set())
    again = await asyncio.wait_for(store.append_new(batches), 20)
    assert again == ([None] * 3 if created else [3, 3, 3])
    await _assert_whole_after_appending(faulty, store, batches)


async def test_unreachable_server_is_named_without_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unreachable server: StoreUnavailableError names host:port, never the password."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    store = MongoSessionStore(
        url=f"mongodb://user:pw-SECRET@127.0.0.1:{port}/",
        client_options={"serverSelectionTimeoutMS": 500},
    )
    key: SessionKey = {"project_key": "p", "session_id": "s"}
    operations: list[Callable[[], Awaitable[None]]] = [
        store.connect,
        lambda: store.append(key, [{"type": "user", "uuid": "u1"}]),
    ]
    try:
        for operation in operations:
            with pytest.raises(StoreUnavailableError) as raised:
                await operation()
            shown = "".join(traceback.format_exception(raised.value))
            assert f"127.0.0.1:{port}" in str(raised.value)
            assert "pw-SECRET" not in shown
    finally:
        await store.close()
    assert "pw-SECRET" not in caplog.text


# -- query-operator injection and wire options ---------------------------------------------

INJECTED: list[Any] = [{"$ne": ""}, {"$gt": ""}, {"$regex": ".*"}]


async def _seeded(make_store: StoreFactory) -> tuple[Any, str, list[SessionKey]]:
    """A store holding two sessions of one project, the first with a subagent transcript."""
    store = make_store()
    project = unique_name("proj")
    keys: list[SessionKey] = [
        {"project_key": project, "session_id": "first"},
        {"project_key": project, "session_id": "first", "subpath": "subagents/agent-1"},
        {"project_key": project, "session_id": "second"},
    ]
    for n, key in enumerate(keys):
        await store.append(key, transcript_batch(f"s{n}", 0, 2))
    return store, project, keys


def _injected_keys(project: str) -> Iterator[dict[str, Any]]:
    for value in INJECTED:
        yield {"project_key": value, "session_id": "first"}
        yield {"project_key": project, "session_id": value}
        yield {"project_key": project, "session_id": "first", "subpath": value}


_KEY_OPERATIONS: dict[str, Callable[[Any, Any], Awaitable[Any]]] = {
    "append": lambda store, key: store.append(key, [{"type": "user", "uuid": "injected"}]),
    "load": lambda store, key: store.load(key),
    "delete": lambda store, key: store.delete(key),
    "list_subkeys": lambda store, key: store.list_subkeys(
        {"project_key": key["project_key"], "session_id": key["session_id"]}
    ),
}
_PROJECT_OPERATIONS: dict[str, Callable[[Any, Any], Awaitable[Any]]] = {
    "list_sessions": lambda store, project: store.list_sessions(project),
    "list_session_summaries": lambda store, project: store.list_session_summaries(project),
}


async def _assert_intact(store: Any, keys: list[SessionKey]) -> None:
    for n, key in enumerate(keys):
        assert await store.load(key) == transcript_batch(f"s{n}", 0, 2)
    assert await store.list_subkeys(
        {"project_key": keys[0]["project_key"], "session_id": "first"}
    ) == ["subagents/agent-1"]


@pytest.mark.parametrize("operation", list(_KEY_OPERATIONS))
async def test_operator_in_key_is_refused(make_store: StoreFactory, operation: str) -> None:
    """An operator as any key field raises InvalidKeyError and reads or changes nothing."""
    store, project, keys = await _seeded(make_store)
    for key in _injected_keys(project):
        if operation == "list_subkeys" and "subpath" in key:
            continue  # list_subkeys takes no subpath
        with pytest.raises(InvalidKeyError):
            await _KEY_OPERATIONS[operation](store, key)
    await _assert_intact(store, keys)


@pytest.mark.parametrize("operation", list(_PROJECT_OPERATIONS))
async def test_operator_as_project_is_refused(make_store: StoreFactory, operation: str) -> None:
    """A query operator as the project of a listing is refused with InvalidKeyError."""
    store, _, keys = await _seeded(make_store)
    for value in INJECTED:
        with pytest.raises(InvalidKeyError):
            await _PROJECT_OPERATIONS[operation](store, value)
    await _assert_intact(store, keys)


@pytest.mark.parametrize(
    "options",
    [
        {"url": "mongodb://attacker.example/"},
        {"client_options": {"tlsAllowInvalidCertificates": True}},
        {"database": {"$ne": ""}},
        {"database": "admin"},
        {"database": "tenant_b"},
        {"collection_prefix": {"$ne": ""}},
        {"unknown": 1},
    ],
    ids=["url", "client_options", "operator-database", "admin", "not-allowed", "prefix", "unknown"],
)
async def test_unsafe_wire_options_are_refused(options: dict[str, Any]) -> None:
    """StoreRegistry.build refuses url, client options, operators, bad databases, unknowns."""
    builder = mongo_session_store_builder(
        {"url": "mongodb://127.0.0.1:1/", "allowed_databases": ["tenant_a"]}
    )
    registry = StoreRegistry()
    registry.register("mongo", builder, replace=True)
    try:
        with pytest.raises(InvalidStoreOptionsError):
            registry.build({"kind": "mongo", "options": options})
    finally:
        await builder.aclose()


# -- bad input -------------------------------------------------------------------------------

BAD_BATCHES: dict[str, Any] = {
    "dict-batch": {"type": "user"},
    "tuple-batch": ({"type": "user"},),
    "none-batch": None,
    "string-entry": [{"type": "user", "uuid": "ok"}, "user"],
    "list-entry": [{"type": "user", "uuid": "ok"}, ["type", "user"]],
    "none-entry": [{"type": "user", "uuid": "ok"}, None],
    "no-type": [{"type": "user", "uuid": "ok"}, {"uuid": "x"}],
    "int-type": [{"type": "user", "uuid": "ok"}, {"type": 3}],
}


@pytest.mark.parametrize("batch", list(BAD_BATCHES.values()), ids=list(BAD_BATCHES))
async def test_bad_batch_is_refused_whole(make_store: StoreFactory, batch: Any) -> None:
    """A malformed batch raises InvalidEntryError and stores none of its entries."""
    store = make_store()
    key: SessionKey = {"project_key": unique_name("proj"), "session_id": "s"}
    await store.append(key, [{"type": "user", "uuid": "before"}])
    with pytest.raises(InvalidEntryError):
        await store.append(key, batch)
    assert await store.load(key) == [{"type": "user", "uuid": "before"}]


def _entry_of_bytes(uuid: str, size: int) -> SessionStoreEntry:
    return {"type": "assistant", "uuid": uuid, "message": {"content": "x" * size}}


@pytest.fixture(params=["mongomock", pytest.param("live", marks=live)])
async def limited_store(request: pytest.FixtureRequest) -> AsyncIterator[MongoSessionStore]:
    """A Mongo store (mongomock-motor or live) refusing entries above 64 KiB."""
    database = unique_name("limited")
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        store = MongoSessionStore(
            client=AsyncMongoMockClient(), database=database, max_entry_bytes=64 * 1024
        )
        yield store
        return
    url: str = request.getfixturevalue("mongo_url")
    async with MongoSessionStore(url=url, database=database, max_entry_bytes=64 * 1024) as store:
        yield store
        client: AsyncMongoClient[Any]
        async with AsyncMongoClient(url) as client:
            await client.drop_database(database)


async def test_entry_over_max_entry_bytes_is_refused_by_name(
    limited_store: MongoSessionStore,
) -> None:
    """An entry over max_entry_bytes raises EntryTooLargeError naming it; no entry is stored."""
    limited = limited_store
    key: SessionKey = {"project_key": unique_name("proj"), "session_id": "s"}
    batch = [_entry_of_bytes("small", 100), _entry_of_bytes("too-big", 100 * 1024)]
    with pytest.raises(EntryTooLargeError, match="too-big"):
        await limited.append(key, batch)
    assert await limited.load(key) is None


@live
async def test_entry_above_bson_limit_round_trips(live_store: MongoSessionStore) -> None:
    """A 17 MB entry is stored in chunks and loads deep-equal, in order between neighbours."""
    key: SessionKey = {"project_key": unique_name("proj"), "session_id": "s"}
    batch = [
        _entry_of_bytes("before", 10),
        _entry_of_bytes("huge", 17 * 1024 * 1024),
        _entry_of_bytes("after", 10),
    ]
    await live_store.append(key, batch)
    assert await live_store.load(key) == batch
