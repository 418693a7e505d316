"""A read-only operator (role ``read``) can list, show, export and count, never write.

A SecantusDB with ``--auth`` has two users of one database: ``writer`` (``readWrite``), who
imports the fixture, and ``reader`` (``read``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from devtools.secantus import SecantusServer
from pymongo import MongoClient
from typer.testing import Result

from session_store_mongo import MongoSessionStore
from session_store_protocol.types import SessionKey
from tests.cli_support import LIBRARY_CALLS, MAIN, PROJECT, PROJECT_DIR, SECOND, invoke
from tests.servers import server_with_users
from tests.support import MASTER_KEY, predecessor_document

pytestmark = pytest.mark.live

DATABASE = "shared"
PREDECESSOR_COLLECTION = "predecessor_sessions"
PASSWORD = "pw-READER-7e1b"


@pytest.fixture(scope="module")
def auth_server(
    secantusd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecantusServer]:
    """A SecantusDB with ``--auth``: a writer and a reader of one database, the fixture imported.

    The database also holds one session of the predecessor, for ``migrate`` to read.
    """
    data = str(tmp_path_factory.mktemp("read-only-data"))
    users = {
        user: (PASSWORD, [{"role": role, "db": DATABASE}])
        for user, role in (("writer", "readWrite"), ("reader", "read"))
    }
    with server_with_users(secantusd, data, users) as server:
        imported = as_user(server, "writer", "import", str(PROJECT_DIR))
        assert imported.exit_code == 0, imported.output
        client: MongoClient[Any] = MongoClient(url_of(server, "writer"))
        try:
            old = predecessor_document(
                "old", "-old", [{"type": "user"}], datetime.now(timezone.utc)
            )
            client[DATABASE][PREDECESSOR_COLLECTION].insert_one(old)
        finally:
            client.close()
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


WRITES = {
    "import": ["import", str(PROJECT_DIR)],
    "delete": ["delete", SECOND, "--yes"],
    "prune": ["prune", "--older-than", "0s", "--yes"],
    "migrate": [
        "migrate",
        "--from-database",
        DATABASE,
        "--from-collection",
        PREDECESSOR_COLLECTION,
    ],
    "forget": ["forget", "--yes"],
    "rotate-keys": ["rotate-keys"],
}
"""Each writing command, as the reader runs it (migrate from a source the reader may read)."""
REFUSED_WRITES = [
    *((command, []) for command in WRITES),
    # Refused at the write itself (forget and rotate-keys find no data key of the reader's
    # project to write, and stop before).
    *((command, ["--no-create-indexes"]) for command in ("import", "delete", "prune", "migrate")),
]


@pytest.mark.parametrize(("command", "indexes"), REFUSED_WRITES)
def test_reader_cannot_write_and_is_told_which_command(
    auth_server: SecantusServer, tmp_path: Path, command: str, indexes: list[str]
) -> None:
    """A write as the reader: exit 1, one line naming the command, no password, nothing changed.

    Refused while creating indexes or (``--no-create-indexes``) at the write itself, the line
    names the command the operator ran, never the library call the server refused.
    """
    encrypted: list[str] = []
    if command in ("forget", "rotate-keys"):
        config = tmp_path / "encryption.json"
        key = base64.b64encode(MASTER_KEY).decode()
        vault = f"{DATABASE}.keys"
        settings = {"kms_providers": {"local": {"key": key}}, "key_vault_namespace": vault}
        config.write_text(json.dumps(settings), encoding="utf-8")
        encrypted = ["--encryption-config", str(config)]
    result = as_user(auth_server, "reader", *encrypted, *indexes, *WRITES[command])
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert re.match(rf"error: {command}: not authorized on 127\.0\.0\.1:\d+: ", line), line
    assert not LIBRARY_CALLS.search(line), line
    assert PASSWORD not in result.output
    assert "mongodb://" not in result.output
    listed = as_user(auth_server, "reader", "list", "--json")
    assert {row["session_id"] for row in json.loads(listed.stdout)} == {MAIN, SECOND}


WRONG_PASSWORD = "wrong-PW-3f9a"


@pytest.mark.parametrize(
    "args", [["list"], ["show", MAIN], ["import", str(PROJECT_DIR)]], ids=lambda a: a[0]
)
def test_wrong_password_names_the_command_and_host(
    auth_server: SecantusServer, args: list[str]
) -> None:
    """A wrong password: exit 1, one line naming the command run, the host and the cause.

    Never the library call that failed inside the command, nor either password or the URL.
    """
    url = url_of(auth_server, "reader").replace(PASSWORD, WRONG_PASSWORD)
    result = invoke(
        "--url", url, "--database", DATABASE, "--project", PROJECT, "--timeout", "5", *args
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert re.match(rf"error: {args[0]}: failed on 127\.0\.0\.1:\d+: ", line), line
    assert "AuthenticationFailed" in line
    assert "(check the user, password and authSource of the URL)" in line
    assert not LIBRARY_CALLS.search(line), line
    assert WRONG_PASSWORD not in result.output
    assert PASSWORD not in result.output
    assert "mongodb://" not in result.output


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
