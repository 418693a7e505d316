"""The operator CLI: import, export, list, show, delete, prune, stats, kinds, options and errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from pymongo import MongoClient

from session_store_mongo import MongoSessionStore
from session_store_mongo.cli import INSTALL_HINT, main
from session_store_mongo.cli.layout import compute_project_key
from session_store_protocol import SessionKey, SessionStoreEntry
from tests.cli_support import (
    FIXTURE_FILES,
    LIBRARY_CALLS,
    MAIN,
    METADATA,
    NO_SERVER_URL,
    PROJECT,
    PROJECT_DIR,
    PROJECTS,
    SECOND,
    SUBAGENT_FILE,
    SUBPATH,
    LiveCli,
    invoke,
    on_terminal,
)

SUMMARY_ROW = re.compile(
    r"^\W*(sessions|transcripts|files with nothing stored|entries stored|skipped duplicates|errors)"
    r"\W+(\d+)\W*$",
    re.M,
)
SPLIT_EMOJI = "5e55a1a5-0000-4000-8000-000000000000"
ALL_IMPORTED = {MAIN: 11, SUBPATH: 5, SECOND: 2}
"""The fixture's transcripts once imported: the subagent's metadata sidecar is one entry."""


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def summary(output: str) -> dict[str, int]:
    """The import summary table's rows as numbers."""
    return {name: int(count) for name, count in SUMMARY_ROW.findall(output)}


@pytest.fixture
def cli(mongo_url: str) -> Iterator[LiveCli]:
    """The CLI on a database of its own, dropped afterwards."""
    live = LiveCli(mongo_url)
    yield live
    live.drop()


SECOND_USED = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
MAIN_USED = datetime(2026, 3, 2, 17, 5, 12, 345000, tzinfo=timezone.utc)
"""When the fixture's sessions were last used, as the copies' modification times say."""


@pytest.fixture
def imported(cli: LiveCli, tmp_path_factory: pytest.TempPathFactory) -> LiveCli:
    """The CLI with the fixture project imported from a copy whose files say when last used.

    The files' modification times are ``MAIN_USED`` and ``SECOND_USED``; the sessions keep them.
    """
    project = tmp_path_factory.mktemp("used") / PROJECT
    shutil.copytree(PROJECT_DIR, project)
    for path, used in [
        (project / f"{MAIN}.jsonl", MAIN_USED),
        (project / SUBAGENT_FILE.relative_to(PROJECT_DIR), MAIN_USED - timedelta(minutes=5)),
        (project / f"{SECOND}.jsonl", SECOND_USED),
    ]:
        os.utime(path, (used.timestamp(), used.timestamp()))
    result = cli("import", str(project))
    assert result.exit_code == 0, result.output
    return cli


# -- import ------------------------------------------------------------------------------------


@pytest.mark.live
def test_import_project_dir_stores_every_transcript(cli: LiveCli) -> None:
    """A project dir imports each session, and the subagent with its metadata under its subpath."""
    result = cli("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == {
        "sessions": 2,
        "transcripts": 3,
        "files with nothing stored": 0,
        "entries stored": 18,
        "skipped duplicates": 0,
        "errors": 0,
    }
    assert cli.sizes() == ALL_IMPORTED
    subkeys = cli.store(lambda s: s.list_subkeys({"project_key": PROJECT, "session_id": MAIN}))
    assert subkeys == [SUBPATH]


@pytest.mark.live
def test_import_counts_only_files_that_stored_something(cli: LiveCli, tmp_path: Path) -> None:
    """Empty and all-binary files are no sessions or transcripts: counted apart, as such."""
    project = tmp_path / PROJECT
    project.mkdir()
    (project / "empty-session.jsonl").write_bytes(b"")
    (project / "binary-session.jsonl").write_bytes(b"\xe1\x9a\n\xff\xfe\n")
    shutil.copy(PROJECT_DIR / f"{SECOND}.jsonl", project)
    result = cli("import", str(project))
    assert result.exit_code == 1  # the binary lines are errors
    assert summary(result.stdout) == {
        "sessions": 1,
        "transcripts": 1,
        "files with nothing stored": 2,
        "entries stored": ALL_IMPORTED[SECOND],
        "skipped duplicates": 0,
        "errors": 2,
    }
    again = summary(cli("import", str(project)).stdout)
    assert (again["sessions"], again["transcripts"], again["files with nothing stored"]) == (
        1,
        1,
        2,
    )


@pytest.mark.live
def test_import_stores_the_metadata_sidecar_as_the_sdk_does(cli: LiveCli) -> None:
    """The agent-<id>.meta.json sidecar becomes the subagent's last entry, type agent_metadata."""
    assert cli("import", str(PROJECT_DIR)).exit_code == 0
    key = {"project_key": PROJECT, "session_id": MAIN, "subpath": SUBPATH}
    loaded = cli.store(lambda s: s.load(key))
    assert loaded is not None
    assert loaded[:-1] == read_jsonl(SUBAGENT_FILE)
    assert loaded[-1] == {**json.loads(METADATA.read_text()), "type": "agent_metadata"}


@pytest.mark.live
def test_import_projects_root_uses_directory_names_as_project_keys(cli: LiveCli) -> None:
    """The projects root imports each project dir under its own name as project key."""
    result = cli("import", str(PROJECTS))
    assert result.exit_code == 0, result.output
    sessions = cli.store(lambda s: s.list_sessions(PROJECT))
    assert sorted(s["session_id"] for s in sessions) == sorted([MAIN, SECOND])


@pytest.mark.live
def test_import_twice_skips_everything_the_second_time(imported: LiveCli) -> None:
    """A second import stores nothing (entries without uuid included) and says so.

    It writes nothing either: the sessions keep their files' times as their last write.
    """
    before = imported.store(lambda s: s.load({"project_key": PROJECT, "session_id": MAIN}))
    result = imported("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    counts = summary(result.stdout)
    assert (counts["entries stored"], counts["skipped duplicates"]) == (0, 18)
    assert imported.sizes() == ALL_IMPORTED
    after = imported.store(lambda s: s.load({"project_key": PROJECT, "session_id": MAIN}))
    assert after == before
    rows = json.loads(imported("list", "--json").stdout)
    assert [(row["session_id"], row["mtime"]) for row in rows] == [
        (MAIN, int(MAIN_USED.timestamp() * 1000)),
        (SECOND, int(SECOND_USED.timestamp() * 1000)),
    ]


@pytest.mark.live
def test_import_twice_keeps_entries_with_an_empty_uuid_once(cli: LiveCli, tmp_path: Path) -> None:
    """``uuid: ""`` is no uuid, to the importer as to the store: a second import adds none."""
    project = tmp_path / PROJECT
    project.mkdir()
    lines = ['{"type":"user","uuid":""}', '{"type":"user","uuid":""}', '{"type":"user","uuid":"a"}']
    (project / "s.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli("import", str(project)).exit_code == 0
    again = cli("import", str(project))
    assert again.exit_code == 0, again.output
    counts = summary(again.stdout)
    assert (counts["entries stored"], counts["skipped duplicates"]) == (0, 3)
    assert cli.store(lambda s: s.size({"project_key": PROJECT, "session_id": "s"})) == 3


@pytest.mark.live
def test_import_file_takes_its_project_from_its_directory(
    cli: LiveCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone <project>/<session>.jsonl goes to <project>, whatever the current directory."""
    monkeypatch.chdir(tmp_path)
    result = invoke(
        "--url", cli.url, "--database", cli.database,
        "import", "--batch-size", "3", str(PROJECT_DIR / f"{MAIN}.jsonl"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert cli.sizes() == {MAIN: 11, SUBPATH: 0, SECOND: 0}
    assert cli.store(lambda s: s.list_sessions(compute_project_key(tmp_path))) == []


@pytest.mark.live
@pytest.mark.parametrize(
    "path",
    [SUBAGENT_FILE, SUBAGENT_FILE.parent, PROJECT_DIR / MAIN],
    ids=["subagent file", "subagents dir", "session dir"],
)
def test_import_subagent_paths_keep_session_and_subpath(cli: LiveCli, path: Path) -> None:
    """A subagent file, a subagents dir or a session dir import the subagent under its session."""
    result = invoke("--url", cli.url, "--database", cli.database, "import", str(path))
    assert result.exit_code == 0, result.output
    assert cli.sizes() == {MAIN: 0, SUBPATH: 5, SECOND: 0}
    assert cli.store(lambda s: s.list_sessions("subagents")) == []
    assert cli.store(lambda s: s.list_sessions(MAIN)) == []


@pytest.mark.live
def test_project_option_overrides_the_directory_name(cli: LiveCli) -> None:
    """With --project, a file goes to that project instead of its directory's name."""
    result = invoke(
        "--url", cli.url, "--database", cli.database, "--project", "elsewhere",
        "import", str(PROJECT_DIR / f"{SECOND}.jsonl"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [s["session_id"] for s in cli.store(lambda s: s.list_sessions("elsewhere"))] == [SECOND]
    assert cli.store(lambda s: s.list_sessions(PROJECT)) == []


def test_project_option_with_several_projects_is_a_usage_error(tmp_path: Path) -> None:
    """--project with a projects root holding two projects is refused before connecting."""
    shutil.copytree(PROJECT_DIR, tmp_path / "one")
    shutil.copytree(PROJECT_DIR, tmp_path / "two")
    result = invoke("--url", NO_SERVER_URL, "--project", "p", "import", str(tmp_path))
    assert result.exit_code == 2
    assert "holds 2 projects" in result.stderr


@pytest.mark.live
def test_malformed_lines_are_reported_and_the_good_ones_stored(
    cli: LiveCli, tmp_path: Path
) -> None:
    """Bad JSON, NaN, too deep, non-objects, refused entries: each named by file:line; exit 1."""
    transcript = tmp_path / "broken.jsonl"
    transcript.write_text(
        '{"type": "user", "uuid": "u1"}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"uuid": "u4", "type": 4}\n'
        "\n"
        '{"type": "assistant", "uuid": "u6", "cost": NaN}\n'
        + '{"type": "x", "deep": '
        + "[" * 5000
        + "]" * 5000
        + "}\n"
        '{"type": "assistant", "uuid": "u8"}\n',
        encoding="utf-8",
    )
    result = cli("import", "--batch-size", "2", str(transcript))
    assert result.exit_code == 1, result.output
    for line in (2, 3, 4, 6, 7):
        assert f"{transcript}:{line}:" in result.stderr
    assert f"{transcript}:3: not a JSON object (array)" in result.stderr
    assert f"{transcript}:1" not in result.stderr
    assert f"{transcript}:8" not in result.stderr
    assert "Traceback" not in result.output
    assert summary(result.stdout)["errors"] == 5
    loaded = cli.store(lambda s: s.load({"project_key": PROJECT, "session_id": "broken"}))
    assert loaded == [{"type": "user", "uuid": "u1"}, {"type": "assistant", "uuid": "u8"}]


@pytest.mark.live
def test_import_error_lines_are_not_wrapped(cli: LiveCli, tmp_path: Path) -> None:
    """On a narrow or non-terminal output, each file:line error stays on one line."""
    transcript = tmp_path / ("a-rather-long-directory-name-" * 3) / "broken.jsonl"
    transcript.parent.mkdir()
    transcript.write_text("{not json at all, and a long line of it}\n", encoding="utf-8")
    result = invoke(
        "--url", cli.url, "--database", cli.database, "--project", PROJECT,
        "import", str(transcript), env={"COLUMNS": "40"},
    )  # fmt: skip
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "broken.jsonl" in line]
    assert line.startswith(f"{transcript}:1: bad JSON")


def _tree_to_interrupt(project: Path) -> dict[str, list[Any]]:
    """Five small transcripts and one of 300 entries over 1 MB; some entries lack a uuid.

    The big one goes through ``append`` (the small ones through ``append_new``): with
    ``--batch-size 1`` it takes seconds, long enough to be interrupted half-way.
    """
    project.mkdir()
    transcripts: dict[str, list[Any]] = {}
    for number in range(5):
        transcripts[f"small-{number:02d}"] = [
            {"type": "user", "uuid": f"small-{number}-{line}", "message": {"content": "hi"}}
            for line in range(4)
        ] + [{"type": "system", "content": f"no uuid {number}"}]
    transcripts["big"] = [
        {"type": "user", "pad": "x" * 3600, **({"uuid": f"big-{line}"} if line % 10 else {})}
        for line in range(300)
    ]
    for session, entries in transcripts.items():
        with (project / f"{session}.jsonl").open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(entry) + "\n" for entry in entries)
    return transcripts


@pytest.mark.live
def test_ctrl_c_during_import_says_how_far_it_got_and_a_rerun_resumes(
    cli: LiveCli, tmp_path: Path
) -> None:
    """SIGINT while storing: one line (files done, entries stored, rerun resumes), exit 130.

    Importing again then stores the rest: every entry once, in its file's order.
    """
    transcripts = _tree_to_interrupt(tmp_path / PROJECT)
    entries = sum(len(lines) for lines in transcripts.values())
    big: SessionKey = {"project_key": PROJECT, "session_id": "big"}
    process = subprocess.Popen(
        [sys.executable, "-m", "session_store_mongo.cli", *cli.global_options(),
         "import", "--batch-size", "1", "--jobs", "2", str(tmp_path / PROJECT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "MONGO_URL"}, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        # Ten appends into the big transcript: the group of small ones (three commands,
        # sent alongside the first of them) is done by then.
        for _ in range(1200):  # a bound on the wait, not a timing
            if cli.store(lambda s: s.size(big)) >= 10 or process.poll() is not None:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert out == ""
    [line] = err.splitlines()
    done = re.fullmatch(
        r"error: import interrupted after (\d+) of 6 files \((\d+) entries stored from them, "
        r"files in progress in part\): run it again to resume \(what was stored is kept and is "
        r"not stored twice\)",
        line,
    )
    assert done is not None, line
    stored = cli.store(lambda s: s.stats()).entries
    in_big = cli.store(lambda s: s.size(big))
    assert 10 <= in_big < len(transcripts["big"])  # interrupted half-way through the big file
    assert (int(done[1]), int(done[2])) == (5, stored - in_big) == (5, 5 * 5)

    again = cli("import", str(tmp_path / PROJECT))
    assert again.exit_code == 0, again.output
    counts = summary(again.stdout)
    assert (counts["entries stored"], counts["skipped duplicates"]) == (entries - stored, stored)

    async def load_all(store: MongoSessionStore) -> dict[str, Any]:
        return {
            session: await store.load({"project_key": PROJECT, "session_id": session})
            for session in transcripts
        }

    assert cli.store(load_all) == transcripts


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


@pytest.mark.live
def test_export_writes_the_imported_files_byte_for_byte(cli: LiveCli, tmp_path: Path) -> None:
    """Import the fixture tree, export each session: every file (sidecar too) is byte-equal."""
    source = tmp_path / "source"
    shutil.copytree(PROJECTS, source)
    split_emoji = source / PROJECT / f"{SPLIT_EMOJI}.jsonl"
    split_emoji.write_text(  # as Claude Code writes a lone surrogate: a lowercase escape
        '{"type":"assistant","uuid":"s1","text":"cut mid-emoji \\ud83d","Δ":"\\udc00 é"}\n'
        '{"type":"user","uuid":"s2","n":[1e-7,1e+21,0.1,0]}\n',
        encoding="utf-8",
    )
    assert cli("import", str(source)).exit_code == 0
    out = tmp_path / "out"
    for session in (MAIN, SECOND, SPLIT_EMOJI):
        result = cli("export", session, "--out", str(out))
        assert result.exit_code == 0, result.output
    exported = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert exported == sorted([*FIXTURE_FILES, split_emoji.relative_to(source)])
    for relative in exported:
        assert (out / relative).read_bytes() == (source / relative).read_bytes(), relative


@pytest.mark.live
def test_export_then_reimport_round_trips(imported: LiveCli, tmp_path: Path) -> None:
    """Re-importing an export into another database stores the same transcripts."""
    assert imported("export", MAIN, "--out", str(tmp_path)).exit_code == 0
    other = imported.other_database()
    reimport = imported("import", str(tmp_path / PROJECT), database=other)
    assert reimport.exit_code == 0, reimport.output
    assert summary(reimport.stdout)["entries stored"] == 16
    keys: list[SessionKey] = [
        {"project_key": PROJECT, "session_id": MAIN},
        {"project_key": PROJECT, "session_id": MAIN, "subpath": SUBPATH},
    ]

    async def load_all(store: MongoSessionStore) -> list[Any]:
        return [await store.load(key) for key in keys]

    assert imported.store(load_all, database=other) == imported.store(load_all)


@pytest.mark.live
def test_export_refuses_to_overwrite_without_force(imported: LiveCli, tmp_path: Path) -> None:
    """An existing transcript is kept (exit 1, named) unless --force replaces it."""
    local = tmp_path / PROJECT / f"{MAIN}.jsonl"
    local.parent.mkdir()
    local.write_text('{"type":"local-only","uuid":"mine"}\n', encoding="utf-8")
    refused = imported("export", MAIN, "--out", str(tmp_path))
    assert refused.exit_code == 1
    assert f"{local}" in refused.stderr
    assert "--force" in refused.stderr
    assert local.read_text(encoding="utf-8") == '{"type":"local-only","uuid":"mine"}\n'
    assert not (tmp_path / PROJECT / MAIN).exists()
    forced = imported("export", MAIN, "--out", str(tmp_path), "--force")
    assert forced.exit_code == 0, forced.output
    assert local.read_bytes() == (PROJECT_DIR / f"{MAIN}.jsonl").read_bytes()


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
    assert [row["mtime"] for row in rows] == [
        int(MAIN_USED.timestamp() * 1000),
        int(SECOND_USED.timestamp() * 1000),
    ]


@pytest.mark.live
def test_import_keeps_the_write_time_of_transcripts_it_did_not_create(
    imported: LiveCli, tmp_path: Path
) -> None:
    """More of a session that exists is appended as any append, and written now.

    Whatever the file's time says: the session is listed first.
    """
    more = tmp_path / "more" / PROJECT
    more.mkdir(parents=True)
    late = more / f"{SECOND}.jsonl"
    late.write_text('{"type":"user","uuid":"late"}\n', encoding="utf-8")
    os.utime(late, (SECOND_USED.timestamp() - 86400,) * 2)
    assert imported("import", str(more)).exit_code == 0
    rows = json.loads(imported("list", "--json").stdout)
    assert [(row["session_id"], row["entries"]) for row in rows] == [(SECOND, 3), (MAIN, 11)]
    assert rows[0]["mtime"] > int(MAIN_USED.timestamp() * 1000)


@pytest.mark.live
def test_list_json_carries_the_whole_title_the_table_shortens(cli: LiveCli) -> None:
    """A title longer than the table's column: --json prints it whole, the table shortens it."""
    title = "Fix the login form " + "x" * 100 + " end"
    key: SessionKey = {"project_key": PROJECT, "session_id": "long-title"}

    async def write(store: MongoSessionStore) -> None:
        await store.append(key, [{"type": "custom-title", "customTitle": title, "uuid": "t"}])

    cli.store(write)
    rows = json.loads(cli("list", "--json").stdout)
    assert [row["title"] for row in rows] == [title]
    table = cli("list")
    assert table.exit_code == 0, table.output
    assert "Fix the login form" in table.stdout
    assert " end" not in table.stdout


@pytest.mark.live
def test_unknown_url_option_is_one_warning_line(cli: LiveCli) -> None:
    """An option the driver ignores: one 'warning:' line naming the host and the option."""
    url = cli.url + ("&" if "?" in cli.url else "?") + "notAnOption=1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warnings.warn reaching the user fails the test
        result = invoke(
            "--url", url, "--database", cli.database, "--project", PROJECT, "list", "--json"
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    [line] = result.stderr.splitlines()
    assert line.startswith("warning: MongoDB URL for ")
    assert "Unknown option: notAnOption." in line


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
def test_show_prints_a_message_without_content_as_json(cli: LiveCli) -> None:
    """A message with no content to read prints as compact JSON, never a Python type name."""
    key: SessionKey = {"project_key": PROJECT, "session_id": "odd"}
    entry = {"type": "user", "uuid": "h4", "message": {"$where": "1", "x.y": 2}}
    cli.store(lambda s: s.append(key, [entry]))
    result = cli("show", "odd")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["user", '{"message":', '{"$where":', '"1",', '"x.y":', "2}}"]


@pytest.mark.live
def test_show_json_prints_raw_entries(imported: LiveCli) -> None:
    """Showing with --json prints the stored entries as JSONL, equal to the source file."""
    result = imported("show", MAIN, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == read_jsonl(PROJECT_DIR / f"{MAIN}.jsonl")


@pytest.mark.live
def test_show_subpath_prints_the_subagent(imported: LiveCli) -> None:
    """Showing with --subpath prints the subagent transcript (and its metadata entry)."""
    result = imported("show", MAIN, "--subpath", SUBPATH, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[:-1] == read_jsonl(SUBAGENT_FILE)
    assert lines[-1]["type"] == "agent_metadata"


@pytest.mark.live
def test_show_streams_a_transcript_longer_than_a_page(cli: LiveCli) -> None:
    """``show`` prints page after page as entries stream in: every entry once, in order."""
    key: SessionKey = {"project_key": PROJECT, "session_id": "long"}
    entries: list[Any] = [
        {"type": "user", "uuid": f"u{n}", "message": {"role": "user", "content": f"line-{n}."}}
        for n in range(450)  # more than two pages of 200
    ]
    cli.store(lambda store: store.append(key, entries))
    shown = cli("show", "long")
    assert shown.exit_code == 0, shown.output
    assert re.findall(r"line-(\d+)\.", shown.stdout) == [str(n) for n in range(450)]
    as_json = cli("show", "long", "--json")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == entries


PEAK_MEMORY_REPORTER = r"""
import re, sys
from session_store_mongo.cli import main
try:
    main()
finally:
    with open("/proc/self/status") as status:
        peak = re.search(r"VmHWM:\s+(\d+) kB", status.read()).group(1)
    print(f"peak {int(peak) * 1024}", file=sys.stderr)
"""
"""Runs the CLI, then reports its own peak resident memory in bytes. Read by the process
itself: the ``ru_maxrss`` a parent gets for a child carries the parent's own peak across fork
and exec on Linux (pytest's hundreds of MB)."""


def show_measured(cli: LiveCli, session: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``show session`` in a process of its own: what it printed, and its peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_REPORTER, *cli.global_options(), "show", session],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )
    peak = re.findall(r"^peak (\d+)$", done.stderr, re.M)
    assert peak, done.stderr
    return done, int(peak[-1])


@pytest.mark.live
def test_show_of_huge_entries_cuts_them_and_stays_bounded_in_memory(cli: LiveCli) -> None:
    """Multi-MB messages print cut, with the marker, in far less memory than the session.

    Before messages were cut and pages bounded by size, a page of these entries was held and
    rendered whole: this test's show ran past its 5-minute timeout (8 such entries: 778 MB of
    peak memory and 3 minutes); now it takes seconds and about 45 MB above a small session's.
    """
    mb = 2**20
    kinds: list[dict[str, Any]] = [
        {"type": "user", "message": {"role": "user", "content": "lorem ipsum dolor\n" * (mb // 5)}},
        {"type": "assistant", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "\x1b[2J\u202e" * (mb // 2)}]}},
        {"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "content": "x " * (2 * mb)}]}},
        {"type": "attachment", "data": "y" * (4 * mb)},
    ]  # fmt: skip
    entries = [{**kinds[n % 4], "uuid": f"huge-{n}"} for n in range(12)]
    session_bytes = sum(len(json.dumps(entry, ensure_ascii=False).encode()) for entry in entries)
    huge: SessionKey = {"project_key": PROJECT, "session_id": "huge"}
    small: SessionKey = {"project_key": PROJECT, "session_id": "small"}

    async def fill(store: MongoSessionStore) -> None:
        for entry in entries:  # one at a time: a few MB per insert
            await store.append(huge, [cast(SessionStoreEntry, entry)])
        await store.append(small, [{"type": "user", "message": {"content": "hi"}}])

    cli.store(fill)
    shown, peak = show_measured(cli, "huge")
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert "\u202e" not in shown.stdout
    cut = re.findall(r"… ([\d,]+) more characters not shown: show --json prints this entry whole",
                     shown.stdout)  # fmt: skip
    assert len(cut) == 6  # the texts: a tool result and an entry's JSON are shortened to a line
    assert "[2J\\u202e" in shown.stdout  # escapes print whole up to the cut
    baseline_shown, baseline = show_measured(cli, "small")
    assert baseline_shown.returncode == 0, baseline_shown.stderr
    # What show holds at once: one reply of the server (16 MB of BSON at most), its entries
    # decoded, and the entry being rendered with a copy or two of it; not the session.
    assert session_bytes > 50 * mb
    assert peak - baseline < 48 * mb, f"{(peak - baseline) / mb:.0f} MB above a small session's"


# -- delete and prune --------------------------------------------------------------------------


@pytest.mark.live
def test_delete_with_yes_removes_session_and_subagents(imported: LiveCli) -> None:
    """Deleting with --yes removes the session and its subagent transcripts, not the others."""
    result = imported("delete", MAIN, "--yes")
    assert result.exit_code == 0, result.output
    assert imported.sizes() == {MAIN: 0, SUBPATH: 0, SECOND: 2}


@pytest.mark.live
def test_delete_declined_on_a_terminal_keeps_data(imported: LiveCli) -> None:
    """Answering no on the terminal exits 1 with 'aborted' and deletes nothing."""
    done = on_terminal(*imported.global_options(), "delete", MAIN, answer="n\n")
    assert done.returncode == 1, done.stderr
    assert "Delete session" in done.stdout
    assert "aborted" in done.stderr
    assert imported.sizes() == ALL_IMPORTED


@pytest.mark.live
@pytest.mark.parametrize(
    "command", [["delete", MAIN], ["prune", "--older-than", "0s"]], ids=["delete", "prune"]
)
def test_deleting_without_a_terminal_needs_yes(imported: LiveCli, command: list[str]) -> None:
    """Without a terminal to confirm on and without --yes: exit 2 before touching anything."""
    result = imported(*command, stdin="y\n")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert imported.sizes() == ALL_IMPORTED


@pytest.mark.live
def test_prune_dry_run_lists_and_yes_deletes(imported: LiveCli, tmp_path: Path) -> None:
    """Pruning with --dry-run lists idle sessions and keeps them; with --yes they are gone.

    Imported sessions are idle since their files were last written; a session written to now
    is not.
    """
    dry = imported("prune", "--older-than", "1h", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert MAIN in dry.stdout
    assert SECOND in dry.stdout
    assert imported.sizes() == ALL_IMPORTED
    late = tmp_path / PROJECT / f"{MAIN}.jsonl"
    late.parent.mkdir()
    late.write_text('{"type":"user","uuid":"now"}\n', encoding="utf-8")
    assert imported("import", str(late.parent)).exit_code == 0
    recent = imported("prune", "--older-than", "1h", "--dry-run")
    assert recent.exit_code == 0, recent.output
    assert MAIN not in recent.stdout
    assert SECOND in recent.stdout
    real = imported("prune", "--older-than", "1h", "--yes")
    assert real.exit_code == 0, real.output
    assert SECOND in real.stdout
    assert imported.sizes() == {MAIN: 12, SUBPATH: 5, SECOND: 0}


@pytest.mark.live
def test_prune_on_a_terminal_lists_then_asks(imported: LiveCli) -> None:
    """On a terminal, prune lists the idle sessions and asks; answering no deletes nothing."""
    done = on_terminal(*imported.global_options(), "prune", "--older-than", "0s", answer="n\n")
    assert done.returncode == 1, done.stderr
    assert MAIN in done.stdout
    assert "Delete these 2 sessions?" in done.stdout
    assert "aborted" in done.stderr
    assert imported.sizes() == ALL_IMPORTED


@pytest.mark.parametrize(
    "duration", ["30", "10y", "-1d", "d", "99999999999d", "1" * 400 + "s", "1e9d"]
)
def test_prune_bad_duration_is_a_usage_error(duration: str) -> None:
    """A duration without a number and an s/m/h/d/w unit, or too long: exit 2, no traceback."""
    result = invoke("--url", NO_SERVER_URL, "prune", "--older-than", duration, "--dry-run")
    assert result.exit_code == 2
    assert "bad duration" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.live
def test_prune_longer_than_the_calendar_is_a_usage_error(imported: LiveCli) -> None:
    """A duration reaching back before the year 1 is refused by the store: exit 2, one line."""
    result = imported("prune", "--older-than", "999999d", "--dry-run")
    assert result.exit_code == 2
    assert "older_than" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e9", "abc", "1e400"])
def test_bad_timeout_is_a_usage_error(value: str) -> None:
    """--timeout outside 0.1..3600 seconds (nan and inf included): exit 2, no traceback."""
    result = invoke("--url", NO_SERVER_URL, "--timeout", value, "list")
    assert result.exit_code == 2
    assert "--timeout" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command", [["list", "--limit", "0"], ["stats", "--largest", "-1"], ["import", "--batch-size",
    "0", "x.jsonl"]], ids=["limit", "largest", "batch-size"]
)  # fmt: skip
def test_counts_below_their_minimum_are_usage_errors(command: list[str]) -> None:
    """A count option below its minimum is exit 2 naming the option, before connecting."""
    result = invoke("--url", NO_SERVER_URL, *command)
    assert result.exit_code == 2
    assert command[1] in result.output


@pytest.mark.live
def test_huge_counts_work(imported: LiveCli) -> None:
    """Counts far beyond any store's size are accepted, not an overflow."""
    huge = str(10**30)
    assert imported("list", "--limit", huge, "--json").exit_code == 0
    assert imported("stats", "--largest", huge).exit_code == 0
    assert imported("import", "--batch-size", huge, str(PROJECT_DIR)).exit_code == 0


# -- stats and maintenance ---------------------------------------------------------------------


@pytest.mark.live
def test_stats_counts_and_lists_largest(imported: LiveCli) -> None:
    """The stats command counts sessions, transcripts and entries; largest session first."""
    result = imported("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"sessions\W+2\b", out)
    assert re.search(r"transcripts\W+3\b", out)
    assert re.search(r"entries\W+18\b", out)
    assert re.search(r"size\W+[\d.]+ (KiB|B)\b", out)
    assert out.index(MAIN) < out.index(SECOND)


@pytest.mark.live
def test_stats_leave_out_deleted_sessions(imported: LiveCli) -> None:
    """After delete, stats count only what is left and no longer list the deleted session."""
    assert imported("delete", MAIN, "--yes").exit_code == 0
    result = imported("stats")
    assert result.exit_code == 0, result.output
    assert re.search(r"sessions\W+1\b", result.stdout)
    assert re.search(r"transcripts\W+1\b", result.stdout)
    assert re.search(r"entries\W+2\b", result.stdout)
    assert MAIN not in result.stdout
    assert SECOND in result.stdout
    dry = imported("prune", "--older-than", "0s", "--dry-run")
    assert MAIN not in dry.stdout
    assert SECOND in dry.stdout


@pytest.mark.live
def test_ensure_indexes_creates_the_indexes(cli: LiveCli) -> None:
    """ensure-indexes creates the store's indexes in the chosen database."""
    result = cli("ensure-indexes")
    assert result.exit_code == 0, result.output
    assert {"entry_seq", "entry_dedupe", "session_key", "session_mtime"} <= index_names(cli)


@pytest.mark.live
def test_reading_commands_create_no_indexes(cli: LiveCli) -> None:
    """list, show, stats, export and prune --dry-run leave a fresh database without indexes."""
    for command in (["list"], ["show", MAIN], ["stats"], ["prune", "--older-than", "1d",
                    "--dry-run"]):  # fmt: skip
        cli(*command)
    assert index_names(cli) == set()


@pytest.mark.live
def test_no_create_indexes_imports_without_creating_them(cli: LiveCli) -> None:
    """With --no-create-indexes (after the command), import stores entries and no index."""
    result = cli("import", "--no-create-indexes", str(PROJECT_DIR / f"{SECOND}.jsonl"))
    assert result.exit_code == 0, result.output
    assert cli.sizes()[SECOND] == 2
    assert index_names(cli) <= {"_id_"}


def index_names(cli: LiveCli) -> set[str]:
    """The names of the indexes on every collection of the CLI's database."""
    client: MongoClient[Any] = MongoClient(cli.url)
    try:
        database = client[cli.database]
        return {
            name
            for collection in database.list_collection_names()
            for name in database[collection].index_information()
        }
    finally:
        client.close()


def test_kinds_lists_memory_and_mongo() -> None:
    """The kinds command lists the built-in memory kind and the mongo kind with its distribution."""
    result = invoke("kinds")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert "memory" in rows
    assert "mongo" in rows
    assert "session-store-mongo" in rows["mongo"]


# -- global options ----------------------------------------------------------------------------


@pytest.mark.live
def test_global_options_after_the_command(cli: LiveCli) -> None:
    """--url, --database and --project work after the command, and win over those before it."""
    imported = invoke(
        "--database", "wrong", "import", str(PROJECT_DIR),
        "--url", cli.url, "--database", cli.database,
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    listed = invoke(
        "list", "--json", "--url", cli.url, "--database", cli.database, "--project", PROJECT
    )
    assert listed.exit_code == 0, listed.output
    assert {row["session_id"] for row in json.loads(listed.stdout)} == {MAIN, SECOND}


@pytest.mark.parametrize("command", ["import", "export", "list", "show", "delete", "prune",
                                     "stats", "ensure-indexes", "kinds"])  # fmt: skip
def test_command_help_shows_the_global_options(command: str) -> None:
    """Every command's --help lists the global options."""
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    for option in ("--url", "--database", "--project", "--timeout", "--no-create-indexes"):
        assert option in result.stdout, option


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["list"], ["show", MAIN], ["import", str(PROJECT_DIR)]], ids=lambda a: a[0]
)
def test_no_server_fails_naming_the_command_and_host_never_the_password(
    args: list[str],
) -> None:
    """An unreachable server is exit 1, one line naming the command run, the host and the cause.

    Never the library call that failed inside the command, nor the password or the URL.
    """
    result = invoke("--url", NO_SERVER_URL, "--project", PROJECT, *args)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {args[0]}: failed on 127.0.0.1:1: "), line
    assert "ServerSelectionTimeoutError" in line
    assert not LIBRARY_CALLS.search(line), line
    assert "hunter2" not in result.output
    assert "mongodb://" not in result.output
    assert "Traceback" not in result.output


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
        "loaded = {m for m in sys.modules if m.split('.')[0] in ('typer', 'rich')\n"
        "          or m.split('.')[:2] == ['session_store_mongo', 'cli']}\n"
        "print(sorted(loaded))\n"
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
    """Without --project, list shows the sessions of the current directory's project key."""
    here = tmp_path / "work"
    here.mkdir()
    project_dir = tmp_path / compute_project_key(here)
    project_dir.mkdir()
    shutil.copy(PROJECT_DIR / f"{SECOND}.jsonl", project_dir)
    monkeypatch.chdir(here)
    options = ("--url", cli.url, "--database", cli.database)
    assert invoke(*options, "import", str(project_dir)).exit_code == 0
    listed = invoke(*options, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [row["session_id"] for row in json.loads(listed.stdout)] == [SECOND]


def _interrupted_export(cli: LiveCli, tmp_path: Path, number: signal.Signals) -> tuple[int, str]:
    """Signal an export of a 10,000-entry session; return its exit code and stderr.

    The signal goes once the temporary file exists: the export is then seconds from done.
    """
    key: SessionKey = {"project_key": PROJECT, "session_id": "long"}
    entries = [{"type": "user", "uuid": f"u{n}", "pad": "x" * 1000} for n in range(10_000)]
    cli.store(lambda s: s.append(key, entries))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "session_store_mongo.cli", *cli.global_options(),
         "export", "long", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MONGO_URL"},
    )  # fmt: skip
    try:
        for _ in range(1200):  # a bound on the wait, not a timing
            if list(out.rglob(".long.jsonl.*")) or process.poll() is not None:
                break
            time.sleep(0.01)
        process.send_signal(number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert stdout == ""
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    return process.returncode, stderr


@pytest.mark.live
@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_an_export_and_leaves_no_file(
    cli: LiveCli, tmp_path: Path, number: signal.Signals, code: int
) -> None:
    """SIGINT or SIGTERM mid-export: one line, exit 128 + signal, no file, not even a temp one."""
    returncode, stderr = _interrupted_export(cli, tmp_path, number)
    assert returncode == code, stderr
    assert stderr.splitlines() == ["error: export interrupted: no file was written or replaced"]


@pytest.mark.live
def test_sigterm_stops_show_even_blocked_on_a_full_pipe(cli: LiveCli) -> None:
    """SIGTERM ends show --json with one line, exit 143; blocked on a full pipe, a second does."""
    key: SessionKey = {"project_key": PROJECT, "session_id": "shown"}
    cli.store(lambda s: s.append(key, [{"type": "user", "pad": "x" * 1000}] * 3000))
    process = subprocess.Popen(
        [sys.executable, "-m", "session_store_mongo.cli", *cli.global_options(),
         "show", "shown", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "MONGO_URL"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        process.stdout.read(1)  # printing has begun; nobody reads on, so the pipe fills
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)  # blocked in a write, the first one waits for it to end
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert stderr.decode().splitlines() == [
        "error: show interrupted: the transcript was printed in part"
    ]


def test_export_to_dash_is_a_usage_error(tmp_path: Path) -> None:
    """--out - is refused (exit 2, one line): export writes a tree of files, not one stream."""
    result = invoke("--url", NO_SERVER_URL, "export", "s", "--out", "-")
    assert result.exit_code == 2, result.output
    assert "--out -" in result.stderr
    assert not (Path.cwd() / "-").exists()
