"""The operator CLI on an encrypted store: --encryption-config, forget and rotate-keys."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store_mongo import MongoSessionStore
from session_store_mongo.cli.importer import DEFAULT_GROUP_BYTES
from tests.cli_support import (
    MAIN,
    NO_SERVER_URL,
    PROJECT,
    PROJECT_DIR,
    SECOND,
    SUBAGENT_FILE,
    LiveCli,
    invoke,
    on_terminal,
)
from tests.support import MASTER_KEY

SECRET = base64.b64encode(MASTER_KEY).decode()
NEW_SESSION = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
"""A session id the fixture does not have."""


def encryption_config(cli: LiveCli, path: Path, **keys: bytes) -> Path:
    """Write an encryption settings file (key vault in the CLI's database); return its path.

    With several keys, the last one wraps new data keys (and rotation rewraps under it).
    """
    providers = {name: {"key": base64.b64encode(key).decode()} for name, key in keys.items()}
    settings = {"kms_providers": providers, "key_vault_namespace": f"{cli.database}.__keyVault"}
    if len(keys) > 1:
        settings["kms_provider"] = list(keys)[-1]
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


@pytest.fixture
def encrypted(mongo_url: str, tmp_path: Path) -> Iterator[tuple[LiveCli, list[str]]]:
    """The fixture project imported into an encrypted store; the CLI and its config option."""
    cli = LiveCli(mongo_url)
    config = encryption_config(cli, tmp_path / "encryption.json", local=MASTER_KEY)
    option = ["--encryption-config", str(config)]
    result = cli(*option, "import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    yield cli, option
    cli.drop()


@pytest.mark.live
def test_forget_asks_then_makes_the_project_unreadable(
    encrypted: tuple[LiveCli, list[str]],
) -> None:
    """Forget asks first; once confirmed, show says the key was destroyed and stats counts it."""
    cli, option = encrypted
    declined = on_terminal(*cli.global_options(), *option, "forget", answer="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "Destroy the data key of project" in declined.stdout
    assert "aborted" in declined.stderr
    assert cli(*option, "show", MAIN).exit_code == 0
    done = cli(*option, "forget", "--yes")
    assert done.exit_code == 0, done.output
    assert "destroyed 1 data key(s)" in done.stdout
    assert "3 transcripts are unreadable" in done.stdout
    shown = cli(*option, "show", MAIN)
    assert shown.exit_code == 1
    assert "destroyed by forget" in shown.stderr
    assert json.loads(cli(*option, "list", "--json").stdout) == []
    assert re.search(
        r"forgotten sessions \(data key destroyed\)\W+2\b", cli(*option, "stats").stdout
    )
    again = cli(*option, "forget", "--yes")
    assert again.exit_code == 1
    assert re.search(r"already forgotten on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", again.stderr)
    assert "nothing of it was encrypted" not in again.stderr
    deleted = cli(*option, "delete", MAIN, "--yes")
    assert deleted.exit_code == 0, deleted.output
    outputs = [declined.stdout, declined.stderr, done.output, shown.output, again.output]
    assert all(SECRET not in output for output in outputs)


def forgotten_project_tree(root: Path) -> Path:
    """The fixture project again, its main transcript grown past a group, plus new files.

    Its main transcript streams through ``append``; its other files, a new subagent of the
    main session and a new session of a project never forgotten go in a group to
    ``append_new``.
    """
    shutil.copytree(PROJECT_DIR, root / PROJECT)
    line = json.dumps({"type": "progress", "data": "x" * 1000}) + "\n"
    with (root / PROJECT / f"{MAIN}.jsonl").open("a", encoding="utf-8") as main:
        main.write(line * (DEFAULT_GROUP_BYTES // len(line) + 1))
    new_subagent = root / PROJECT / MAIN / "subagents" / "agent-new.jsonl"
    new_subagent.write_text(json.dumps({"type": "user", "uuid": "sub-1"}) + "\n", "utf-8")
    live = root / "-live-project" / f"{NEW_SESSION}.jsonl"
    live.parent.mkdir()
    live.write_text(json.dumps({"type": "user", "uuid": "live-1"}) + "\n", "utf-8")
    return root


@pytest.mark.live
def test_import_into_a_forgotten_project_refuses_its_files_and_goes_on(
    encrypted: tuple[LiveCli, list[str]], tmp_path: Path
) -> None:
    """Each file of a forgotten session is one refused line; the rest is stored, then exit 1.

    Refused: the transcripts forget made unreadable, whether grouped for ``append_new`` or
    streamed through ``append``, and a new subagent transcript of a forgotten session. The
    live project's new session of the same group is stored, and the forgotten project gets
    no fresh data key: forget says it was forgotten already.
    """
    cli, option = encrypted
    assert cli(*option, "forget", "--yes").exit_code == 0
    tree = forgotten_project_tree(tmp_path / "projects")
    result = invoke("--url", cli.url, "--database", cli.database, *option, "import", str(tree))
    assert result.exit_code == 1, result.output
    refused = result.stderr.strip().splitlines()
    destroyed = re.compile(
        rf": refused: the data key of project '{PROJECT}' was destroyed by forget on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: transcript "
    )
    assert sorted(line.split(": refused: ")[0] for line in refused) == sorted(
        str(tree / PROJECT / name)
        for name in (
            f"{MAIN}.jsonl",
            f"{SECOND}.jsonl",
            f"{MAIN}/subagents/agent-a1b2c3d.jsonl",
            f"{MAIN}/subagents/agent-new.jsonl",
        )
    )
    assert all(destroyed.search(line) for line in refused), refused
    assert sum("takes no new subagent transcripts" in line for line in refused) == 1
    assert re.search(r"entries stored\W+1\b", result.stdout), result.stdout  # the summary
    assert re.search(r"errors\W+4\b", result.stdout), result.stdout
    shown = cli(*option, "show", NEW_SESSION, "--json", "--project", "-live-project")
    assert [json.loads(line) for line in shown.stdout.splitlines()] == [
        {"type": "user", "uuid": "live-1"}
    ]
    again = cli(*option, "forget", "--yes")
    assert "already forgotten on" in again.stderr, again.output


@pytest.mark.live
def test_import_of_a_new_session_of_a_forgotten_project_starts_afresh(
    encrypted: tuple[LiveCli, list[str]], tmp_path: Path
) -> None:
    """A new session of a forgotten project is imported under a new key, as the README says.

    Its forgotten sessions stay unreadable, and forget can destroy the new key in turn.
    """
    cli, option = encrypted
    assert cli(*option, "forget", "--yes").exit_code == 0
    new = tmp_path / PROJECT / f"{NEW_SESSION}.jsonl"
    new.parent.mkdir()
    new.write_text(json.dumps({"type": "user", "uuid": "after-forget"}) + "\n", "utf-8")
    result = cli(*option, "import", str(new))
    assert result.exit_code == 0, result.output
    assert json.loads(cli(*option, "show", NEW_SESSION, "--json").stdout) == {
        "type": "user",
        "uuid": "after-forget",
    }
    assert "destroyed by forget" in cli(*option, "show", MAIN).stderr
    done = cli(*option, "forget", "--yes")
    assert "destroyed 1 data key(s)" in done.stdout, done.output
    assert "1 transcripts are unreadable" in done.stdout


@pytest.mark.live
def test_forget_names_the_sessions_stored_in_clear_and_leaves_them_readable(
    mongo_url: str, tmp_path: Path
) -> None:
    """A session imported without the config is not counted as unreadable, and is named."""
    cli = LiveCli(mongo_url)
    try:
        config = encryption_config(cli, tmp_path / "encryption.json", local=MASTER_KEY)
        option = ["--encryption-config", str(config)]
        clear = cli("import", str(PROJECT_DIR / f"{SECOND}.jsonl"))
        assert clear.exit_code == 0, clear.output
        assert cli(*option, "import", str(PROJECT_DIR)).exit_code == 0
        done = cli(*option, "forget", "--yes")
        assert done.exit_code == 0, done.output
        assert "destroyed 1 data key(s)" in done.stdout
        assert "2 transcripts are unreadable for good" in done.stdout
        assert (
            f"1 transcripts of {PROJECT} were stored without encryption and stay readable: "
            f"delete them with `session-store-mongo delete SESSION` (sessions {SECOND})"
        ) in done.stdout
        assert cli("show", SECOND).exit_code == 0
        listed = json.loads(cli(*option, "list", "--json").stdout)
        assert [session["session_id"] for session in listed] == [SECOND]
        assert "destroyed by forget" in cli(*option, "show", MAIN).stderr
    finally:
        cli.drop()


@pytest.mark.live
def test_import_of_a_new_session_without_the_config_is_refused(
    encrypted: tuple[LiveCli, list[str]], tmp_path: Path
) -> None:
    """A new session of an encrypted project imported without the config: one line, not stored."""
    cli, option = encrypted
    new = tmp_path / PROJECT / f"{NEW_SESSION}.jsonl"
    new.parent.mkdir()
    new.write_text(json.dumps({"type": "user", "uuid": "in-clear"}) + "\n", "utf-8")
    result = cli("import", str(new))
    assert result.exit_code == 1
    assert f"project '{PROJECT}' is encrypted" in result.stderr
    assert "--encryption-config" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    listed = json.loads(cli(*option, "list", "--json").stdout)
    assert NEW_SESSION not in [session["session_id"] for session in listed]


def sessions_where(filter_: dict[str, Any]) -> Callable[[MongoSessionStore], Awaitable[int]]:
    """For ``LiveCli.store``: how many transcript documents match ``filter_``."""

    async def count(store: MongoSessionStore) -> int:
        sessions = store.client[store.database][store.collection_prefix + "sessions"]
        return int(await sessions.count_documents(filter_))

    return count


@pytest.mark.live
@pytest.mark.parametrize("imported", ["a session, without the SDK", "a subagent transcript"])
def test_import_without_the_config_is_refused_in_a_project_with_no_sealed_summary(
    mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imported: str
) -> None:
    """What an encrypted import writes marks the project, summary or not: clear imports refused.

    Refused: a new session, and more lines for the transcript imported encrypted.
    """
    cli = LiveCli(mongo_url)
    try:
        config = encryption_config(cli, tmp_path / "encryption.json", local=MASTER_KEY)
        source = (
            SUBAGENT_FILE if imported == "a subagent transcript" else PROJECT_DIR / f"{MAIN}.jsonl"
        )
        first = tmp_path / "first" / PROJECT / source.relative_to(PROJECT_DIR)
        first.parent.mkdir(parents=True)
        shutil.copy(source, first)
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "claude_agent_sdk", None)  # no summary folded
            done = cli("--encryption-config", str(config), "import", str(first))
        assert done.exit_code == 0, done.output
        assert cli.store(sessions_where({"summary_sealed": {"$exists": True}})) == 0
        new = tmp_path / "new" / PROJECT / f"{NEW_SESSION}.jsonl"
        new.parent.mkdir(parents=True)
        new.write_text(json.dumps({"type": "user", "uuid": "in-clear"}) + "\n", "utf-8")
        result = cli("import", str(new))
        assert result.exit_code == 1, result.output
        assert f"project '{PROJECT}' is encrypted" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert cli.store(sessions_where({"session_id": NEW_SESSION})) == 0
        with first.open("a", encoding="utf-8") as more:  # a line more for the sealed transcript
            more.write(json.dumps({"type": "user", "uuid": "more-in-clear"}) + "\n")
        again = cli("import", str(first))
        assert again.exit_code == 1, again.output
        assert f"{PROJECT}/{source.relative_to(PROJECT_DIR).with_suffix('')}" in again.stderr
        assert "is encrypted" in again.stderr
        assert "--encryption-config" in again.stderr
        assert cli.store(sessions_where({"count": {"$gt": 0}, "encrypted": {"$ne": True}})) == 0
    finally:
        cli.drop()


@pytest.mark.live
def test_rotate_keys_moves_data_keys_to_the_new_master_key(
    encrypted: tuple[LiveCli, list[str]], tmp_path: Path
) -> None:
    """rotate-keys rewraps under the config's kms_provider; the old master key is then useless."""
    cli, old = encrypted
    new_key = os.urandom(96)
    both = encryption_config(cli, tmp_path / "both.json", local=MASTER_KEY, **{"local:2": new_key})
    rotated = cli("--encryption-config", str(both), "rotate-keys")
    assert rotated.exit_code == 0, rotated.output
    assert "rewrapped 1 data keys" in rotated.stdout
    new_only = encryption_config(cli, tmp_path / "new.json", **{"local:2": new_key})
    assert cli("--encryption-config", str(new_only), "show", MAIN).exit_code == 0
    stale = cli(*old, "show", MAIN)
    assert stale.exit_code == 1
    assert SECRET not in stale.output


@pytest.mark.live
def test_encrypted_store_without_settings_says_so(encrypted: tuple[LiveCli, list[str]]) -> None:
    """Reading an encrypted store without --encryption-config is one line naming the option."""
    cli, _ = encrypted
    result = cli("show", MAIN)
    assert result.exit_code == 1
    assert "--encryption-config" in result.stderr
    assert "Traceback" not in result.output
    assert cli("forget", "--yes").exit_code == 2


def test_forget_never_defaults_to_the_current_project(tmp_path: Path) -> None:
    """Forget without an explicit --project is a usage error, before any server is asked."""
    config = tmp_path / "encryption.json"
    config.write_text(json.dumps({"kms_providers": {"local": {"key": "AA=="}}}), "utf-8")
    result = invoke("--url", NO_SERVER_URL, "--encryption-config", str(config), "forget", "--yes")
    assert result.exit_code == 2
    assert "--project" in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        '{"kms_providers": {"local": {"key": "c2VjcmV0"}',  # not JSON
        json.dumps({"kms_providers": {"local": {"key": SECRET}}, "surprise": 1}),
        '{"kms_providers": {"local": {"key": "not base64 c2VjcmV0!"}}}',
        '{"kms_providers": {"local": {"key": "c2VjcmV0LWtleS1tYXRlcmlhbA=="}}}',  # not 96 bytes
        '{"kms_providers": {"local": {"key": 96}}}',  # not a string
        '{"kms_providers": {}}',
    ],
)
def test_malformed_encryption_config_is_a_usage_error(tmp_path: Path, content: str) -> None:
    """Every fault of the config file exits 2 with one line naming the file, no key material."""
    config = tmp_path / "encryption.json"
    config.write_text(content, "utf-8")
    result = invoke("--url", NO_SERVER_URL, "--encryption-config", str(config), "stats")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: stats: cannot read encryption settings from ")
    assert f"from {config}: " in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert "c2VjcmV0" not in result.output
    assert SECRET not in result.output
