"""Every query the store sends is planned on its own indexes, led by the shard-key fields.

The test runs the store's operations (appends of every kind, loads, listings, summaries,
subkeys, size, stats, follow, delete, prune) through a client that records each command it
sends, then asks the server to ``explain`` the query of each recorded command. A query the
store starts to send tomorrow is recorded and explained like the others; a command the test
does not know how to read fails it.

Asserted of every plan: an index scan on one of the store's indexes, no collection scan, no
sort the index does not already provide; a per-session query has equality on ``project_key``
and ``session_id`` and its index starts with them; a per-project query has equality on
``project_key`` and its index starts with it; only the operator's store-wide totals (``stats``,
prune's scan for idle sessions) read every transcript document, through ``session_key``. A
follower's change stream reads the oplog, not a collection: its filter must name the session.

SecantusDB, the test server, plans less than MongoDB: a filter it cannot serve from one index
as a whole (a field no index holds, such as the compare-and-set's ``settled``) it scans the
collection for, and it sorts in memory unless the sort field leads the index. There the test
explains the part of the filter the store's indexes hold and checks the same rules on it: the
rest filters the few documents those bounds select, as MongoDB does (index scan, then fetch).
A sort is accepted there only above an index whose keys are the filter's equalities and then
the sort's fields, which MongoDB walks in order. Its ``explain`` of a ``findAndModify`` on the
key reports one key examined, though the command itself scans (README, "What limits the
figures"): what is checked is the plan, which is what MongoDB runs.

The check whether a project is encrypted is held to more, with no part explained instead: each
of its queries on its mark's partial index, examining nothing of a clear project.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey
from tests.support import CommandLog, unique_name

pytestmark = pytest.mark.live

MAIN: SessionKey = {"project_key": "plans", "session_id": "s1"}
SUB: SessionKey = {**MAIN, "subpath": "subagents/agent-1"}
OTHER: SessionKey = {"project_key": "plans", "session_id": "s2"}
KEY_FIELDS = ("project_key", "session_id", "subpath")
NO_QUERY = {
    "insert",  # checked by the unique indexes, nothing to plan
    "createIndexes",
    "listIndexes",
    "hello",
    "ping",
    "getMore",  # continues a planned find or aggregate
    "killCursors",
    "endSessions",
    "commitTransaction",  # append_new's transaction: its inserts were its writes
    "abortTransaction",
    "killSessions",
}
"""Commands that carry no query to plan."""


def _entries(prefix: str, n: int) -> list[Any]:
    return [
        {"type": "user", "uuid": f"{prefix}-{i}", "message": {"role": "user", "content": "hi"}}
        for i in range(n)
    ]


@dataclass
class Query:
    """The query part of one recorded command: what the server plans."""

    command: str
    collection: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None = None
    pipeline: list[dict[str, Any]] | None = None

    @property
    def store_wide(self) -> bool:
        """No single project: only the operator's totals over the sessions collection."""
        project = self.filter.get("project_key")
        return project is None or isinstance(project, dict)

    def explain_target(self, filter_: dict[str, Any]) -> dict[str, Any]:
        """The command to explain, with ``filter_`` in place of the recorded filter."""
        if self.pipeline is not None:
            stages = list(self.pipeline)
            if stages and "$match" in stages[0]:
                stages[0] = {"$match": filter_}
            return {"aggregate": self.collection, "pipeline": stages, "cursor": {}}
        target: dict[str, Any] = {"find": self.collection, "filter": filter_}
        if self.sort:
            target["sort"] = self.sort
        return target


def _queries(command: dict[str, Any]) -> Iterator[Query]:
    """The queries in one recorded command (an update or delete may carry several)."""
    name = next(iter(command))
    if name in NO_QUERY:
        return
    if name == "find":
        yield Query(name, command["find"], dict(command.get("filter", {})), command.get("sort"))
    elif name == "findAndModify":
        yield Query(name, command[name], dict(command.get("query", {})), command.get("sort"))
    elif name in ("update", "delete"):
        for statement in command[f"{name}s"]:
            yield Query(name, command[name], dict(statement["q"]))
    elif name == "aggregate" and "$changeStream" in command["pipeline"][0]:
        # Reads the oplog, not a collection: nothing to plan; its filter must name the key.
        [match] = [stage["$match"] for stage in command["pipeline"] if "$match" in stage]
        inserts = [c for c in match["$or"] if c.get("operationType") == "insert"]
        assert any(
            {"fullDocument.project_key", "fullDocument.session_id"} <= set(clause)
            for clause in inserts
        ), f"a change stream on entries of any session: {match}"
    elif name == "aggregate":
        pipeline = [dict(stage) for stage in command["pipeline"]]
        head = pipeline[0].get("$match", {}) if pipeline else {}
        yield Query(name, command[name], dict(head), pipeline=pipeline)
    elif name == "bulkWrite":
        namespaces = [info["ns"].split(".", 1)[1] for info in command["nsInfo"]]
        for op in command["ops"]:
            for kind in ("update", "delete"):
                if kind in op:
                    yield Query(f"bulkWrite {kind}", namespaces[op[kind]], dict(op["filter"]))
    else:
        raise AssertionError(f"the store sent {name!r}, which this test cannot explain yet")


def _stages(plan: Any) -> Iterator[dict[str, Any]]:
    """Every stage of the winning plans in an explain reply (rejected plans left out)."""
    if isinstance(plan, dict):
        if "stage" in plan:
            yield plan
        for key, value in plan.items():
            if key != "rejectedPlans":
                yield from _stages(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _stages(item)


def _equalities(filter_: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filter_.items() if not isinstance(v, dict) and not k.startswith("$")}


def _sort_provided(ixscan: dict[str, Any], filter_: dict[str, Any], sort: dict[str, Any]) -> bool:
    """Whether walking ``ixscan``'s index yields ``sort``'s order for ``filter_``."""
    keys = list(ixscan["keyPattern"])
    pinned = [k for k in keys if k in _equalities(filter_)]
    return keys[: len(pinned)] == pinned and keys[len(pinned) : len(pinned) + len(sort)] == list(
        sort
    )


class Planner:
    """Explains queries on one database and checks each plan against the rules above."""

    def __init__(self, database: Any, indexes: dict[str, dict[str, set[str]]], secantus: bool):
        self.database = database
        self.indexes = indexes
        """Per collection, each store index's name and its fields."""
        self.secantus = secantus

    async def plan(self, query: Query, filter_: dict[str, Any]) -> list[dict[str, Any]]:
        reply = await self.database.command(
            "explain", query.explain_target(filter_), verbosity="queryPlanner"
        )
        return list(_stages(reply))

    def indexed_part(self, query: Query) -> dict[str, Any]:
        """The filter's fields some store index of the collection holds."""
        fields = set().union(*self.indexes[query.collection].values())
        return {k: v for k, v in query.filter.items() if k in fields}

    async def check(self, query: Query) -> None:
        stages = await self.plan(query, query.filter)
        filter_ = query.filter
        if self.secantus and any(s["stage"] == "COLLSCAN" for s in stages):
            filter_ = self.indexed_part(query)
            assert filter_, f"{query}: no indexed field at all"
            stages = await self.plan(query, filter_)
        where = f"{query.command} on {query.collection} {filter_}"
        names = [s["stage"] for s in stages]
        assert "COLLSCAN" not in names, f"{where}: collection scan {names}"
        ixscans = [s for s in stages if s["stage"] in ("IXSCAN", "COUNT_SCAN", "DISTINCT_SCAN")]
        assert ixscans, f"{where}: no index scan {names}"
        for ixscan in ixscans:
            assert ixscan["indexName"] in self.indexes[query.collection], f"{where}: {ixscan}"
        for sort_stage in (s for s in stages if s["stage"] == "SORT"):
            assert self.secantus, f"{where}: blocking sort {names}"
            sort = query.sort or sort_stage.get("sortPattern", {})
            assert all(_sort_provided(ix, filter_, sort) for ix in ixscans), (
                f"{where}: the index does not provide the order {sort}"
            )
        self.check_key_prefix(query, filter_, ixscans, where)

    def check_key_prefix(
        self, query: Query, filter_: dict[str, Any], ixscans: list[dict[str, Any]], where: str
    ) -> None:
        """Per session: led by project_key and session_id; per project: by project_key."""
        if query.store_wide:
            assert query.collection.endswith("sessions"), f"{where}: store-wide read of entries"
            assert {ix["indexName"] for ix in ixscans} == {"session_key"}, where
            return
        assert not isinstance(filter_.get("project_key", {}), dict), f"{where}: no project_key"
        lead = ["project_key"]
        if "session_id" in filter_:
            session = filter_["session_id"]
            assert not isinstance(session, dict) or set(session) == {"$in"}, where
            lead.append("session_id")
        for ixscan in ixscans:
            assert list(ixscan["keyPattern"])[: len(lead)] == lead, f"{where}: {ixscan}"


@pytest.fixture
async def recorded(mongo_url: str) -> AsyncIterator[tuple[MongoSessionStore, CommandLog]]:
    """A store whose client records its commands, its indexes made and ownership checked."""
    log = CommandLog()
    store = MongoSessionStore(
        url=mongo_url, database=unique_name("plans"), client_options={"event_listeners": [log]}
    )
    await store.connect()  # index creation and the one-time ownership probe are not queries
    log.clear()
    yield store, log
    await store.client.drop_database(store.database)
    await store.close()


async def _every_operation(store: MongoSessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each operation of the store, each append path included."""
    await store.append(MAIN, _entries("m", 3))
    await store.append(MAIN, _entries("n", 3))  # insert and settle in one command
    await store.append(MAIN, _entries("n", 3))  # a retried batch: the separate insert
    await store.append(SUB, _entries("a", 2))
    await asyncio.gather(*(store.append(OTHER, _entries(f"o{w}", 2)) for w in range(4)))
    fresh = [
        ({"project_key": "plans", "session_id": f"new{n}"}, _entries(f"x{n}", 2)) for n in range(3)
    ]
    assert await store.append_new([*fresh, (MAIN, _entries("y", 1))]) == [2, 2, 2, None]
    big = {"type": "tool_result", "uuid": "big", "content": "x" * (17 * 1024 * 1024)}
    await store.append(OTHER, [big])  # stored in chunks
    await store.append(OTHER, [big])  # its chunks dropped as a duplicate's
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # a process without the SDK
    await store.append(MAIN, _entries("p", 2))  # leaves the summary behind
    monkeypatch.undo()
    assert await store.list_session_summaries("plans")  # catches it up
    assert await store.load(MAIN)
    assert await store.load(OTHER)
    assert [item async for item in store.iter_entries(MAIN, after=2)]
    assert await store.list_sessions("plans")
    assert await store.list_subkeys({"project_key": "plans", "session_id": "s1"}) == [
        "subagents/agent-1"
    ]
    assert await store.size(MAIN) == 8
    assert (await store.stats()).sessions == 5
    await store.set_mtime(OTHER, datetime.now(timezone.utc) - timedelta(days=9))
    assert await store.prune_inactive(timedelta(days=1), dry_run=True)
    assert await store.prune_inactive(timedelta(days=1), only=[OTHER])
    async with store.follow(MAIN, include_subkeys=True) as follower:
        followed = 0
        async for _ in follower:  # the 10 stored entries, then one appended while following
            followed += 1
            if followed == 10:
                await store.append(MAIN, _entries("f", 1))
            if followed == 11:
                break
    await store.delete(SUB)
    await store.delete(MAIN)


async def test_every_query_is_planned_on_the_store_indexes(
    recorded: tuple[MongoSessionStore, CommandLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each recorded query: an index scan on a store index, led by the shard-key fields."""
    store, log = recorded
    await _every_operation(store, monkeypatch)
    recorded_commands = list(log.commands)  # before the test's own commands
    database = store.client[store.database]
    indexes = {}
    for suffix in ("entries", "sessions", "entry_chunks"):
        name = store.collection_prefix + suffix
        info = await database[name].index_information()
        indexes[name] = {
            index: {field for field, _ in spec["key"]}
            for index, spec in info.items()
            if index != "_id_"
        }
    build = await store.client.admin.command("buildInfo")
    planner = Planner(database, indexes, secantus="secantusVersion" in build)
    queries = [query for command in recorded_commands for query in _queries(command)]
    kinds = {query.command for query in queries}
    assert {"find", "findAndModify", "update", "delete", "aggregate", "bulkWrite update"} <= kinds
    problems = []
    for query in queries:
        try:
            await planner.check(query)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
    assert not problems, "\n".join(problems)


async def test_encrypted_project_check_reads_none_of_the_clear_transcripts(
    recorded: tuple[MongoSessionStore, CommandLog],
) -> None:
    """Whether a project is encrypted: one partial index a mark, empty for a clear project.

    A store without encryption settings asks before it creates a transcript. Each query must be
    planned on its mark's partial index as a whole (no part explained instead), and examine no
    key and no document of the project's clear transcripts, however many there are.
    """
    store, log = recorded
    clear: list[SessionKey] = [{"project_key": "plans", "session_id": f"c{n}"} for n in range(20)]
    await store.append_new([(key, _entries(key["session_id"], 1)) for key in clear])
    log.clear()
    await store.append(MAIN, _entries("m", 1))  # creates a transcript: the check runs first
    marks = {
        "encrypted": "session_encrypted",
        "summary_sealed": "session_sealed",
        "forgotten": "session_forgotten",
    }
    checks = [
        query
        for command in log.commands
        for query in _queries(command)
        if query.command == "find" and set(query.filter) & set(marks)
    ]
    assert [next(iter(set(q.filter) & set(marks))) for q in checks] == list(marks)
    for query in checks:
        [mark] = set(query.filter) & set(marks)
        reply = await store.client[store.database].command(
            "explain", query.explain_target(query.filter), verbosity="executionStats"
        )
        stages = list(_stages(reply["queryPlanner"]))
        where = f"{query.filter}: {[s['stage'] for s in stages]}"
        assert "COLLSCAN" not in {s["stage"] for s in stages}, where
        [ixscan] = [s for s in stages if s["stage"] == "IXSCAN"]
        assert ixscan["indexName"] == marks[mark], where
        assert list(ixscan["keyPattern"]) == ["project_key"], where
        assert query.filter["project_key"] == "plans", where
        stats = reply["executionStats"]
        assert (stats["totalKeysExamined"], stats["totalDocsExamined"]) == (0, 0), where
