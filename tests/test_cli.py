"""The operator CLI: import, export, list, show, delete, prune, stats, kinds and its errors."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner, Result

from session_store_mongo import DEFAULT_COLLECTION_PREFIX, MongoSessionStore
from session_store_mongo.cli import INSTALL_HINT, main
from session_store_mongo.cli.app import app
from session_store_mongo.cli.layout import compute_project_key
from tests.support import FIXTURES, unique_name

T = TypeVar("T")

PROJECTS = FIXTURES / "claude_projects"
PROJECT = "-home-dev-acme-webapp"
PROJECT_DIR = PROJECTS / PROJECT
MAIN = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
SECOND = "0b6a9a52-7f3d-4e2c-9a1b-5c4d3e2f1a0b"
SUBPATH = "subagents/agent-a1b2c3d"
FIXTURE_FILES = sorted(p.relative_to(PROJECTS) for p in PROJECTS.rglob("*.jsonl"))
NO_SERVER_URL = "mongodb://user:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=500"
SUMMARY_ROW = re.compile(
    r"^\W*(sessions|transcripts|entries stored|skipped duplicates|errors)\W+(\d+)\W*$", re.M
)


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def summary(output: str) -> dict[str, int]:
    """The import summary table's rows as numbers."""
    return {name: int(count) for name, count in SUMMARY_ROW.findall(output)}


def invoke(
    *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    """Run the CLI in-process with a wide terminal and no MONGO_URL from the environment."""
    environment: dict[str, str | None] = {"COLUMNS": "200", "MONGO_URL": None}
    environment.update(env or {})
    return CliRunner().invoke(app, list(args), env=environment, input=stdin)


class LiveCli:
    """Runs the CLI against one fresh database (or several) on the live server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.databases = [unique_name("cli")]

    @property
    def database(self) -> str:
        return self.databases[0]

    def other_database(self) -> str:
        self.databases.append(unique_name("cli"))
        return self.databases[-1]

    def __call__(self, *args: str, database: str | None = None, stdin: str | None = None) -> Result:
        return invoke(
            "--url", self.url, "--database", database or self.database, "--project", PROJECT,
            *args, stdin=stdin,
        )  # fmt: skip

    def store(self, operation: Callable[[MongoSessionStore], Awaitable[T]]) -> T:
        """Inspect the database directly, not through the CLI."""

        async def run() -> T:
            async with MongoSessionStore(url=self.url, database=self.database) as store:
                return await operation(store)

        return asyncio.run(run())

    def sizes(self) -> dict[str, int]:
        async def count(store: MongoSessionStore) -> dict[str, int]:
            return {
                MAIN: await store.size({"project_key": PROJECT, "session_id": MAIN}),
                SUBPATH: await store.size(
                    {"project_key": PROJECT, "session_id": MAIN, "subpath": SUBPATH}
                ),
                SECOND: await store.size({"project_key": PROJECT, "session_id": SECOND}),
            }

        return self.store(count)


@pytest.fixture
def cli(mongo_url: str) -> Iterator[LiveCli]:
    """The CLI on a database of its own, dropped afterwards."""
    live = LiveCli(mongo_url)
    yield live
    client: MongoClient[Any] = MongoClient(mongo_url)
    for database in live.databases:
        client.drop_database(database)
    client.close()


@pytest.fixture
def imported(cli: LiveCli) -> LiveCli:
    """The CLI with the fixture project already imported."""
    result = cli("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    return cli


# -- import ------------------------------------------------------------------------------------


@pytest.mark.live
def test_import_project_dir_stores_every_transcript(cli: LiveCli) -> None:
    """Importing a project dir stores each session, and the subagent under its subpath."""
    result = cli("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == {
        "sessions": 2,
        "transcripts": 3,
        "entries stored": 17,
        "skipped duplicates": 0,
        "errors": 0,
    }
    assert cli.sizes() == {MAIN: 11, SUBPATH: 4, SECOND: 2}
    subkeys = cli.store(lambda s: s.list_subkeys({"project_key": PROJECT, "session_id": MAIN}))
    assert subkeys == [SUBPATH]


@pytest.mark.live
def test_import_projects_root_uses_directory_names_as_project_keys(cli: LiveCli) -> None:
    """The projects root imports each project dir under its own name as project key."""
    result = cli("import", str(PROJECTS))
    assert result.exit_code == 0, result.output
    sessions = cli.store(lambda s: s.list_sessions(PROJECT))
    assert sorted(s["session_id"] for s in sessions) == sorted([MAIN, SECOND])


@pytest.mark.live
def test_import_twice_skips_everything_the_second_time(imported: LiveCli) -> None:
    """A second import stores nothing (entries without uuid included) and says so."""
    before = imported.store(lambda s: s.load({"project_key": PROJECT, "session_id": MAIN}))
    result = imported("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    counts = summary(result.stdout)
    assert (counts["entries stored"], counts["skipped duplicates"]) == (0, 17)
    assert imported.sizes() == {MAIN: 11, SUBPATH: 4, SECOND: 2}
    after = imported.store(lambda s: s.load({"project_key": PROJECT, "session_id": MAIN}))
    assert after == before


@pytest.mark.live
def test_import_loose_file_uses_project_option_and_file_stem(cli: LiveCli) -> None:
    """A lone .jsonl goes to --project with its file stem as session id, in batches."""
    result = cli("import", "--batch-size", "3", str(PROJECT_DIR / f"{MAIN}.jsonl"))
    assert result.exit_code == 0, result.output
    assert cli.sizes() == {MAIN: 11, SUBPATH: 0, SECOND: 0}


@pytest.mark.live
def test_malformed_lines_are_reported_and_skipped(cli: LiveCli, tmp_path: Path) -> None:
    """Bad JSON, non-objects and entries without a string type name file:line; exit 1."""
    transcript = tmp_path / "broken.jsonl"
    transcript.write_text(
        '{"type": "user", "uuid": "u1"}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"uuid": "u4", "type": 4}\n'
        "\n"
        '{"type": "assistant", "uuid": "u6"}\n',
        encoding="utf-8",
    )
    result = cli("import", str(transcript))
    assert result.exit_code == 1, result.output
    for line in (2, 3, 4):
        assert f"{transcript}:{line}:" in result.stderr
    assert f"{transcript}:6" not in result.stderr
    assert summary(result.stdout)["errors"] == 3
    loaded = cli.store(lambda s: s.load({"project_key": PROJECT, "session_id": "broken"}))
    assert loaded == [{"type": "user", "uuid": "u1"}, {"type": "assistant", "uuid": "u6"}]


def test_import_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    """A path that does not exist is refused before connecting: exit 2, path named."""
    missing = tmp_path / "nowhere.jsonl"
    result = invoke("--url", NO_SERVER_URL, "import", str(missing))
    assert result.exit_code == 2
    assert "nowhere.jsonl" in result.output


def test_import_dir_without_transcripts_is_a_usage_error(tmp_path: Path) -> None:
    """A directory holding no transcripts is refused with a one-line error, exit 2."""
    result = invoke("--url", NO_SERVER_URL, "import", str(tmp_path))
    assert result.exit_code == 2
    assert "no <session>.jsonl transcripts" in result.stderr
    assert "Traceback" not in result.output


# -- export ------------------------------------------------------------------------------------


def assert_same_files(exported: Path) -> None:
    """Every exported file equals its fixture, line by line as parsed JSON."""
    files = sorted(p.relative_to(exported) for p in exported.rglob("*.jsonl"))
    assert files == [f for f in FIXTURE_FILES if MAIN in str(f)]
    for relative in files:
        assert read_jsonl(exported / relative) == read_jsonl(PROJECTS / relative), relative


@pytest.mark.live
def test_export_then_reimport_round_trips(imported: LiveCli, tmp_path: Path) -> None:
    """Export writes Claude Code's layout equal to the source; re-importing it changes nothing."""
    first = imported("export", MAIN, "--out", str(tmp_path / "first"))
    assert first.exit_code == 0, first.output
    assert_same_files(tmp_path / "first")

    other = imported.other_database()
    reimport = imported("import", str(tmp_path / "first" / PROJECT), database=other)
    assert reimport.exit_code == 0, reimport.output
    second = imported("export", MAIN, "--out", str(tmp_path / "second"), database=other)
    assert second.exit_code == 0, second.output
    assert_same_files(tmp_path / "second")


@pytest.mark.live
def test_export_unknown_session_fails(imported: LiveCli, tmp_path: Path) -> None:
    """Exporting a session the project lacks is exit 1 and writes nothing."""
    result = imported("export", "no-such-session", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "not found" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- list and show -----------------------------------------------------------------------------


@pytest.mark.live
def test_list_json_newest_first_with_titles(imported: LiveCli) -> None:
    """Listing with --json gives sessions newest first, with entry counts and summary titles."""
    result = imported("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["session_id"], r["entries"], r["title"]) for r in rows] == [
        (MAIN, 11, "Safari login button fix"),
        (SECOND, 2, "What does the deploy script do?"),
    ]
    assert rows[0]["mtime"] >= rows[1]["mtime"]


@pytest.mark.live
def test_list_table_and_limit(imported: LiveCli) -> None:
    """The table names sessions and titles; --limit keeps only the newest."""
    table = imported("list")
    assert table.exit_code == 0, table.output
    assert MAIN in table.stdout
    assert SECOND in table.stdout
    assert "Safari login button fix" in table.stdout
    limited = imported("list", "--limit", "1")
    assert MAIN in limited.stdout
    assert SECOND not in limited.stdout


@pytest.mark.live
def test_show_renders_messages_tool_calls_and_results(imported: LiveCli) -> None:
    """Showing prints text, tool calls as '→ Name(args)' and tool results shortened."""
    result = imported("show", MAIN)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Fix the login form" in out
    assert "→ Read(file_path=/home/dev/acme-webapp/src/LoginForm.tsx)" in out
    assert "← The file has been updated." in out
    assert "← export function LoginForm()" in out
    assert out.count("export function LoginForm") < 8  # the 8-fold tool result was cut


@pytest.mark.live
def test_show_json_prints_raw_entries(imported: LiveCli) -> None:
    """Showing with --json prints the stored entries as JSONL, equal to the source file."""
    result = imported("show", MAIN, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == read_jsonl(PROJECT_DIR / f"{MAIN}.jsonl")


@pytest.mark.live
def test_show_subpath_prints_the_subagent(imported: LiveCli) -> None:
    """Showing with --subpath prints the subagent transcript, not the main one."""
    result = imported("show", MAIN, "--subpath", SUBPATH, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == read_jsonl(PROJECT_DIR / MAIN / "subagents" / "agent-a1b2c3d.jsonl")


# -- delete and prune --------------------------------------------------------------------------


@pytest.mark.live
def test_delete_with_yes_removes_session_and_subagents(imported: LiveCli) -> None:
    """Deleting with --yes removes the session and its subagent transcripts, not the others."""
    result = imported("delete", MAIN, "--yes")
    assert result.exit_code == 0, result.output
    assert imported.sizes() == {MAIN: 0, SUBPATH: 0, SECOND: 2}


@pytest.mark.live
def test_delete_declined_aborts_and_keeps_data(imported: LiveCli) -> None:
    """Answering no to the confirmation exits 1 with 'aborted' and deletes nothing."""
    result = imported("delete", MAIN, stdin="n\n")
    assert result.exit_code == 1
    assert "aborted" in result.stderr
    assert imported.sizes() == {MAIN: 11, SUBPATH: 4, SECOND: 2}


@pytest.mark.live
def test_prune_dry_run_lists_and_real_run_deletes(imported: LiveCli) -> None:
    """Pruning with --dry-run lists idle sessions and keeps them; without it they are gone."""
    recent = imported("prune", "--older-than", "1h", "--dry-run")
    assert recent.exit_code == 0, recent.output
    assert MAIN not in recent.stdout
    dry = imported("prune", "--older-than", "0s", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert MAIN in dry.stdout
    assert SECOND in dry.stdout
    assert imported.sizes() == {MAIN: 11, SUBPATH: 4, SECOND: 2}
    real = imported("prune", "--older-than", "0s")
    assert real.exit_code == 0, real.output
    assert MAIN in real.stdout
    assert imported.sizes() == {MAIN: 0, SUBPATH: 0, SECOND: 0}


@pytest.mark.parametrize("duration", ["30", "10y", "-1d", "d"])
def test_prune_bad_duration_is_a_usage_error(duration: str) -> None:
    """A duration without a number and an s/m/h/d/w unit is exit 2, before connecting."""
    result = invoke("--url", NO_SERVER_URL, "prune", "--older-than", duration)
    assert result.exit_code == 2
    assert "bad duration" in result.stderr


# -- maintenance -------------------------------------------------------------------------------


@pytest.mark.live
def test_stats_counts_and_lists_largest(imported: LiveCli) -> None:
    """The stats command counts sessions, transcripts and entries; largest session first."""
    result = imported("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"sessions\W+2\b", out)
    assert re.search(r"transcripts\W+3\b", out)
    assert re.search(r"entries\W+17\b", out)
    assert re.search(r"size\W+[\d.]+ (KiB|B)\b", out)
    assert out.index(MAIN) < out.index(SECOND)


@pytest.mark.live
def test_ensure_indexes_creates_the_indexes(cli: LiveCli) -> None:
    """ensure-indexes creates the store's indexes in the chosen database."""
    result = cli("ensure-indexes")
    assert result.exit_code == 0, result.output
    client: MongoClient[Any] = MongoClient(cli.url)
    try:
        names = set(client[cli.database][f"{DEFAULT_COLLECTION_PREFIX}entries"].index_information())
        names |= set(
            client[cli.database][f"{DEFAULT_COLLECTION_PREFIX}sessions"].index_information()
        )
    finally:
        client.close()
    assert {"entry_seq", "entry_dedupe", "session_key", "session_mtime"} <= names


def test_kinds_lists_memory_and_mongo() -> None:
    """The kinds command lists the built-in memory kind and the mongo kind with its distribution."""
    result = invoke("kinds")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert "memory" in rows
    assert "mongo" in rows
    assert "session-store-mongo" in rows["mongo"]


# -- errors ------------------------------------------------------------------------------------


def test_no_server_fails_naming_the_host_never_the_password() -> None:
    """An unreachable server is exit 1, one line naming the host, without the password."""
    result = invoke("--url", NO_SERVER_URL, "--project", PROJECT, "list")
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.stderr
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_url_is_a_usage_error() -> None:
    """Without --url or MONGO_URL, a store command exits 2 saying how to configure one."""
    result = invoke("--project", PROJECT, "list")
    assert result.exit_code == 2
    assert "--url" in result.stderr
    assert "MONGO_URL" in result.stderr


def test_url_comes_from_the_environment() -> None:
    """MONGO_URL stands in for --url (and its password stays out of the output)."""
    result = invoke("--project", PROJECT, "list", env={"MONGO_URL": NO_SERVER_URL})
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.stderr
    assert "hunter2" not in result.output


def test_main_without_typer_prints_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the cli extra, main() prints the pip command on one line and exits 2."""
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == INSTALL_HINT


def test_library_import_does_not_load_the_cli() -> None:
    """Importing the library never imports Typer, Rich or the CLI modules."""
    code = (
        "import sys, session_store_mongo, session_store_mongo.plugin\n"
        "loaded = {'typer', 'rich', 'session_store_mongo.cli', 'session_store_mongo.cli.app'}\n"
        "print(sorted(loaded & set(sys.modules)))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


# -- project keys ------------------------------------------------------------------------------


def _nested(root: Path, length: int) -> Path:
    path = root
    while len(str(path)) <= length:
        path = path / "deeply-nested.directory_name"
    path.mkdir(parents=True)
    return path


@pytest.mark.sdk
def test_project_key_matches_the_sdk(tmp_path: Path) -> None:
    """Our project key equals the SDK's: plain, unicode (NFC and NFD), symlinked, long paths."""
    from claude_agent_sdk import project_key_for_directory

    plain = tmp_path / "acme webapp"
    composed = tmp_path / "naïve café 日本"
    decomposed = tmp_path / unicodedata.normalize("NFD", "résumé-décomposé")
    link = tmp_path / "link"
    for directory in (plain, composed, decomposed):
        directory.mkdir()
    link.symlink_to(plain)
    long = _nested(tmp_path, 260)
    for directory in (plain, composed, decomposed, link, long):
        assert compute_project_key(directory) == project_key_for_directory(directory), directory
    assert len(compute_project_key(long)) > 200
    assert compute_project_key(link) == compute_project_key(plain)


@pytest.mark.live
def test_project_defaults_to_the_current_directory(
    cli: LiveCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --project, a loose file goes to the current directory's project key."""
    monkeypatch.chdir(tmp_path)
    result = invoke(
        "--url", cli.url, "--database", cli.database, "import", str(PROJECT_DIR / f"{SECOND}.jsonl")
    )
    assert result.exit_code == 0, result.output
    sessions = cli.store(lambda s: s.list_sessions(compute_project_key(tmp_path)))
    assert [s["session_id"] for s in sessions] == [SECOND]
