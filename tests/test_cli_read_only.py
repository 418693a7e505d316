"""A read-only operator (role ``read``) can list, show, export and count, never write.

A SecantusDB with ``--auth`` has two users of one database: ``writer`` (``readWrite``), who
imports the fixture, and ``reader`` (``read``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devtools.secantus import SecantusServer
from pymongo import MongoClient
from typer.testing import Result

from session_store_mongo import MongoSessionStore
from session_store_protocol.types import SessionKey
from tests.cli_support import MAIN, PROJECT, PROJECT_DIR, SECOND, invoke
from tests.servers import server_with_users

pytestmark = pytest.mark.live

DATABASE = "shared"
PASSWORD = "pw-READER-7e1b"


@pytest.fixture(scope="module")
def auth_server(
    secantusd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecantusServer]:
    """A SecantusDB with ``--auth``: a writer and a reader of one database, the fixture imported."""
    data = str(tmp_path_factory.mktemp("read-only-data"))
    users = {
        user: (PASSWORD, [{"role": role, "db": DATABASE}])
        for user, role in (("writer", "readWrite"), ("reader", "read"))
    }
    with server_with_users(secantusd, data, users) as server:
        imported = as_user(server, "writer", "import", str(PROJECT_DIR))
        assert imported.exit_code == 0, imported.output
        yield server


def url_of(server: SecantusServer, user: str) -> str:
    return (
        f"mongodb://{user}:{PASSWORD}@127.0.0.1:{server.port}/"
        "?authSource=admin&directConnection=true"
    )


def as_user(server: SecantusServer, user: str, *args: str, project: str = PROJECT) -> Result:
    return invoke(
        "--url", url_of(server, user), "--database", DATABASE, "--project", project,
        "--timeout", "5", *args,
    )  # fmt: skip


def test_reader_lists_sessions(auth_server: SecantusServer) -> None:
    """``list`` works for a user who may only read (it creates no index)."""
    result = as_user(auth_server, "reader", "list", "--json")
    assert result.exit_code == 0, result.output
    assert {row["session_id"] for row in json.loads(result.stdout)} == {MAIN, SECOND}


def test_reader_counts_with_stats(auth_server: SecantusServer) -> None:
    """``stats`` works for a user who may only read."""
    result = as_user(auth_server, "reader", "stats")
    assert result.exit_code == 0, result.output
    assert MAIN in result.stdout


def test_reader_shows_and_exports(auth_server: SecantusServer, tmp_path: Path) -> None:
    """``show`` and ``export`` work for a user who may only read."""
    shown = as_user(auth_server, "reader", "show", SECOND, "--json")
    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout.splitlines()) == 2
    exported = as_user(auth_server, "reader", "export", SECOND, "--out", str(tmp_path))
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / PROJECT / f"{SECOND}.jsonl").read_bytes() == (
        PROJECT_DIR / f"{SECOND}.jsonl"
    ).read_bytes()


def test_reader_cannot_write_and_is_told_so(auth_server: SecantusServer) -> None:
    """Deleting as the reader is refused: exit 1, one line, no password, nothing deleted."""
    result = as_user(auth_server, "reader", "delete", SECOND, "--yes")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output
    listed = as_user(auth_server, "reader", "list", "--json")
    assert {row["session_id"] for row in json.loads(listed.stdout)} == {MAIN, SECOND}


def test_reader_lists_a_summary_left_behind_without_writing(auth_server: SecantusServer) -> None:
    """A summary behind its transcript: the reader's ``list`` folds it in memory, writes nothing."""
    key: SessionKey = {"project_key": "left-behind", "session_id": "s-behind"}
    entries = [
        {"type": "user", "uuid": "u1", "message": {"role": "user", "content": "first prompt"}},
        {"type": "custom-title", "uuid": "t1", "customTitle": "Caught up in memory"},
    ]

    async def write() -> str:
        async with MongoSessionStore(
            url=url_of(auth_server, "writer"), database=DATABASE, create_indexes=False
        ) as store:
            await store.append(key, entries)
            return store.collection_prefix + "sessions"

    collection = asyncio.run(write())
    client: MongoClient[Any] = MongoClient(url_of(auth_server, "writer"))
    try:
        sessions = client[DATABASE][collection]
        behind = {"$unset": {"summary": "", "summary_escaped": ""}, "$set": {"summary_seq": 0}}
        assert sessions.update_one(dict(key), behind).modified_count == 1
        before = sessions.find_one(dict(key))
        result = as_user(auth_server, "reader", "list", "--json", project=key["project_key"])
        assert result.exit_code == 0, result.output
        assert [row["title"] for row in json.loads(result.stdout)] == ["Caught up in memory"]
        assert sessions.find_one(dict(key)) == before
    finally:
        client.close()
