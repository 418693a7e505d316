"""Migration from @open-gitagent/session-store-mongo 0.2: split, copied, verified, resumable.

The source is a fixture database in the predecessor's exact layout, one document per session
``{_id: sessionId, projectKey, entries, updatedAt}``: a real Claude Code session with its
subagent's entries mixed into the main array (and one sidechain entry without ``agentId``), a
second session, an empty one, one of more than 1,000 entries (some without uuid, one uuid
repeated), and a malformed document.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    fold_session_summary,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    list_sessions_from_store,
    list_subagents_from_store,
)
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner, Result

from session_store_mongo import MongoSessionStore
from session_store_mongo.cli.app import app
from session_store_mongo.migrate import MigrationReport, migrate, split_transcripts
from session_store_protocol import SessionKey, StoreUnavailableError
from tests.support import FIXTURES, predecessor_document, unique_name

PROJECT = "-home-dev-acme-webapp"
CWD = "/home/dev/acme-webapp"
MAIN = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
SECOND = "0b6a9a52-7f3d-4e2c-9a1b-5c4d3e2f1a0b"
AGENT = "a1b2c3d"
LONG = "long-session"
EMPTY = "empty-session"
BROKEN = "broken-session"
SESSION_FILES = FIXTURES / "claude_projects" / PROJECT
ORPHAN: dict[str, Any] = {"type": "user", "uuid": "orphan-1", "isSidechain": True, "message": "?"}
"""A sidechain entry without ``agentId``: it cannot be attributed and stays in the main one."""
UPDATED = {
    MAIN: datetime(2026, 9, 1, 8, 0, tzinfo=timezone.utc),
    SECOND: datetime(2026, 10, 1, 8, 0, tzinfo=timezone.utc),
    LONG: datetime(2026, 8, 1, 8, 0, tzinfo=timezone.utc),
    EMPTY: datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc),
}


def _read(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


MAIN_ENTRIES = _read(SESSION_FILES / f"{MAIN}.jsonl")
AGENT_ENTRIES = _read(SESSION_FILES / MAIN / "subagents" / f"agent-{AGENT}.jsonl")
SECOND_ENTRIES = _read(SESSION_FILES / f"{SECOND}.jsonl")
LONG_ENTRIES: list[Any] = [
    {"type": "user" if n % 2 else "assistant", "uuid": f"long-{n}", "n": n}
    if n % 100
    else {"type": "system", "n": n}  # every hundredth entry has no uuid
    for n in range(1200)
]
MIXED = [*MAIN_ENTRIES[:4], *AGENT_ENTRIES, ORPHAN, *MAIN_ENTRIES[4:]]
"""The predecessor's array for MAIN: its subagent's entries arrived while it ran."""


def key(session: str, subpath: str | None = None) -> SessionKey:
    out: SessionKey = {"project_key": PROJECT, "session_id": session}
    if subpath is not None:
        out["subpath"] = subpath
    return out


def predecessor_database() -> list[dict[str, Any]]:
    return [
        predecessor_document(MAIN, PROJECT, MIXED, UPDATED[MAIN]),
        predecessor_document(SECOND, PROJECT, SECOND_ENTRIES, UPDATED[SECOND]),
        predecessor_document(LONG, PROJECT, [*LONG_ENTRIES, LONG_ENTRIES[1]], UPDATED[LONG]),
        predecessor_document(EMPTY, PROJECT, [], UPDATED[EMPTY]),
        {"_id": BROKEN, "projectKey": PROJECT, "entries": [{"no": "type"}], "updatedAt": 1},
    ]


class Databases:
    """The predecessor's database (the source) and the store's (the target) on the live server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.source_name = unique_name("pred")
        self.target_name = unique_name("mig")
        self.client: AsyncMongoClient[Any] = AsyncMongoClient(url)
        self.source = self.client[self.source_name]["sessions"]

    def store(self) -> MongoSessionStore:
        return MongoSessionStore(client=self.client, database=self.target_name)

    async def source_documents(self) -> list[Any]:
        documents: list[Any] = await self.source.find({}).sort("_id", 1).to_list(None)
        return documents

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(
            app,
            ["--url", self.url, "--database", self.target_name, "migrate",
             "--from-database", self.source_name, *args],
            env={"COLUMNS": "200"},
        )  # fmt: skip


@pytest.fixture
async def databases(mongo_url: str) -> AsyncIterator[Databases]:
    """A fresh source filled in the predecessor's layout, and an empty target database."""
    dbs = Databases(mongo_url)
    await dbs.source.insert_many(predecessor_database())
    yield dbs
    await dbs.client.drop_database(dbs.source_name)
    await dbs.client.drop_database(dbs.target_name)
    await dbs.client.close()


@pytest.fixture
def sync_databases(mongo_url: str) -> Iterator[Databases]:
    """The same, for tests that drive the CLI (which runs its own event loop)."""
    dbs = Databases(mongo_url)
    client: MongoClient[Any] = MongoClient(mongo_url)
    client[dbs.source_name]["sessions"].insert_many(predecessor_database())
    yield dbs
    client.drop_database(dbs.source_name)
    client.drop_database(dbs.target_name)
    client.close()


def _assert_migrated(report: MigrationReport) -> None:
    """The counts of a complete first run over the fixture database."""
    assert (report.documents, report.sessions, report.empty) == (5, 3, 1)
    assert (report.transcripts, report.subagent_transcripts) == (4, 1)
    assert report.entries == len(MIXED) + len(SECOND_ENTRIES) + len(LONG_ENTRIES) + 1
    assert [(p.kind, p.document) for p in report.problems] == [
        ("unattributed", repr(MAIN)),
        ("malformed", repr(BROKEN)),
        ("duplicate", repr(LONG)),
    ]
    assert report.verified == 4


def test_subagent_entries_are_split_by_claude_codes_marks() -> None:
    """Sidechain entries with an agentId (and agent_metadata) go under subagents/agent-<id>."""
    meta = {"type": "agent_metadata", "agentId": "b2", "agentType": "Explore"}
    transcripts, unattributed = split_transcripts(
        [*MIXED, meta, {"type": "user", "isSidechain": True, "agentId": "../x"}]
    )
    assert list(transcripts) == ["", f"subagents/agent-{AGENT}", "subagents/agent-b2"]
    assert transcripts[f"subagents/agent-{AGENT}"] == AGENT_ENTRIES
    assert transcripts["subagents/agent-b2"] == [meta]
    assert transcripts[""][: len(MAIN_ENTRIES) + 1] == [
        *MAIN_ENTRIES[:4],
        ORPHAN,
        *MAIN_ENTRIES[4:],
    ]
    assert unattributed == [4 + len(AGENT_ENTRIES), len(MIXED) + 1]


@pytest.mark.live
async def test_migration_copies_splits_verifies_and_keeps_the_source(
    databases: Databases,
) -> None:
    """End to end: every transcript loads as its source, mtime is updatedAt, summaries folded."""
    before = await databases.source_documents()
    async with databases.store() as store:
        report = await migrate(databases.source, store)
        _assert_migrated(report)
        assert report.copied == report.entries - 1  # the repeated uuid is stored once
        assert report.complete is False  # the malformed document was skipped
        assert await store.load(key(MAIN)) == [*MAIN_ENTRIES[:4], ORPHAN, *MAIN_ENTRIES[4:]]
        assert await store.load(key(MAIN, f"subagents/agent-{AGENT}")) == AGENT_ENTRIES
        assert await store.load(key(SECOND)) == SECOND_ENTRIES
        assert await store.load(key(LONG)) == LONG_ENTRIES
        assert await store.load(key(EMPTY)) is None
        assert await store.load(key(BROKEN)) is None
        listed = {s["session_id"]: s["mtime"] for s in await store.list_sessions(PROJECT)}
        expected_times = {s: int(UPDATED[s].timestamp() * 1000) for s in (MAIN, SECOND, LONG)}
        assert listed == expected_times
        summaries = {s["session_id"]: s for s in await store.list_session_summaries(PROJECT)}
        main_summary = fold_session_summary(None, key(MAIN), await store.load(key(MAIN)) or [])
        assert summaries[MAIN]["data"] == main_summary["data"]
        assert summaries[MAIN]["mtime"] == expected_times[MAIN]
    assert await databases.source_documents() == before


@pytest.mark.live
async def test_migrated_sessions_work_with_the_sdk_helpers(databases: Databases) -> None:
    """The SDK lists migrated sessions newest first, reads messages and finds the subagent."""
    async with databases.store() as store:
        await migrate(databases.source, store)
        infos = await list_sessions_from_store(store, CWD)
        assert [info.session_id for info in infos][:2] == [SECOND, MAIN]
        assert infos[1].custom_title == "Safari login button fix"
        messages = await get_session_messages_from_store(store, MAIN, CWD)
        assert messages[0].message["content"].startswith("Fix the login form")
        assert await list_subagents_from_store(store, MAIN, CWD) == [AGENT]
        agent_messages = await get_subagent_messages_from_store(store, MAIN, AGENT, CWD)
        assert [m.uuid for m in agent_messages] == [e["uuid"] for e in AGENT_ENTRIES]


@pytest.mark.live
async def test_running_again_duplicates_nothing(databases: Databases) -> None:
    """A second run appends nothing (entries without uuid included) and verifies again."""
    async with databases.store() as store:
        await migrate(databases.source, store)
        sizes = [await store.size(key(s)) for s in (MAIN, SECOND, LONG)]
        again = await migrate(databases.source, store)
        assert (again.copied, again.present) == (0, again.entries - 1)
        assert again.verified == 4
        assert [await store.size(key(s)) for s in (MAIN, SECOND, LONG)] == sizes
        assert await store.load(key(LONG)) == LONG_ENTRIES


@pytest.mark.live
async def test_an_interrupted_migration_finishes_when_run_again(
    databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails midway (in the long session) resumes: nothing lost or duplicated."""
    async with databases.store() as store:
        real_append = MongoSessionStore.append
        calls = 0

        async def failing_append(self: MongoSessionStore, k: SessionKey, batch: list[Any]) -> None:
            nonlocal calls
            calls += 1
            if k["session_id"] == LONG and calls > 6:
                raise StoreUnavailableError("append on 127.0.0.1 failed: the network went away")
            await real_append(self, k, batch)

        monkeypatch.setattr(MongoSessionStore, "append", failing_append)
        with pytest.raises(StoreUnavailableError):
            await migrate(databases.source, store, batch_size=100)
        partial = await store.size(key(LONG))
        assert 0 < partial < len(LONG_ENTRIES)
        monkeypatch.undo()
        report = await migrate(databases.source, store, batch_size=100)
        _assert_migrated(report)
        assert report.present >= partial
        assert await store.load(key(LONG)) == LONG_ENTRIES
        assert await store.load(key(SECOND)) == SECOND_ENTRIES


@pytest.mark.live
async def test_a_differing_target_transcript_is_left_alone(databases: Databases) -> None:
    """A transcript the store holds differently is reported, untouched, and blocks dropping."""
    async with databases.store() as store:
        await store.append(key(SECOND), [{"type": "user", "uuid": "written-elsewhere"}])
        report = await migrate(databases.source, store, drop_source=True)
        assert [p.document for p in report.problems if p.kind == "diverged"] == [repr(SECOND)]
        assert await store.load(key(SECOND)) == [{"type": "user", "uuid": "written-elsewhere"}]
        assert report.dropped == 0
    assert len(await databases.source_documents()) == 5


@pytest.mark.live
def test_cli_dry_run_writes_nothing(sync_databases: Databases) -> None:
    """--dry-run reports sessions, entries, bytes and problems, and creates nothing anywhere."""
    result = sync_databases.cli("--dry-run")
    assert result.exit_code == 1, result.output  # the malformed document is a problem
    assert "migration dry run" in result.output
    assert f"malformed: _id '{BROKEN}'" in result.output
    assert f"unattributed: _id '{MAIN}'" in result.output
    assert "entries to copy" in result.output
    client: MongoClient[Any] = MongoClient(sync_databases.url)
    try:
        assert sync_databases.target_name not in client.list_database_names()
        assert client[sync_databases.source_name]["sessions"].count_documents({}) == 5
    finally:
        client.close()


@pytest.mark.live
def test_cli_drops_the_source_only_after_a_complete_verified_run(
    sync_databases: Databases,
) -> None:
    """--drop-source keeps everything while a document is malformed; once fixed, it drops."""
    client: MongoClient[Any] = MongoClient(sync_databases.url)
    source = client[sync_databases.source_name]["sessions"]
    try:
        refused = sync_databases.cli("--drop-source")
        assert refused.exit_code == 1, refused.output
        assert "left in place" in refused.output
        assert source.count_documents({}) == 5
        source.delete_one({"_id": BROKEN})  # the operator deals with it
        url = sync_databases.url
        source_url = url + ("&" if "?" in url else "/?") + "appname=migrate-source"
        dropped = sync_databases.cli("--drop-source", "--from-url", source_url)  # its own client
        assert dropped.exit_code == 0, dropped.output
        assert re.search(r"source documents dropped\W+4\b", dropped.output), dropped.output
        assert "sessions" not in client[sync_databases.source_name].list_collection_names()
    finally:
        client.close()


@pytest.mark.live
def test_cli_refuses_a_missing_source_and_notes_an_empty_one(sync_databases: Databases) -> None:
    """A mistyped --from-collection is an error naming it; an empty source says so, exit 0."""
    typo = sync_databases.cli("--from-collection", "sesions")
    assert typo.exit_code == 1, typo.output
    assert f"{sync_databases.source_name}.sesions does not exist" in typo.output
    assert "migration summary" not in typo.output
    client: MongoClient[Any] = MongoClient(sync_databases.url)
    try:
        client[sync_databases.source_name].create_collection("empty")
        empty = sync_databases.cli("--from-collection", "empty")
    finally:
        client.close()
    assert empty.exit_code == 0, empty.output
    assert f"{sync_databases.source_name}.empty holds no sessions: nothing to migrate" in (
        empty.output
    )


@pytest.mark.live
def test_cli_ctrl_c_says_how_to_resume_and_a_rerun_finishes(
    sync_databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the first document: exit 130 with a line saying a rerun resumes; it does."""

    async def interrupted_after_one(*args: Any, **kwargs: Any) -> MigrationReport:
        def ctrl_c(phase: str) -> None:
            raise KeyboardInterrupt

        return await migrate(*args, **{**kwargs, "on_document": ctrl_c})

    with monkeypatch.context() as patch:
        patch.setattr("session_store_mongo.cli.app.migrate", interrupted_after_one)
        stopped = sync_databases.cli()
    assert stopped.exit_code == 130, stopped.output
    assert "migrate interrupted: run it again to resume" in stopped.output
    resumed = sync_databases.cli()
    assert resumed.exit_code == 1, resumed.output  # the malformed document, as in every run
    assert re.search(r"entries already in the store\W+[1-9]", resumed.output), resumed.output
    assert re.search(r"verification failures\W+0\b", resumed.output), resumed.output
