r"""Hostile text in every field the CLI prints is shown literally: no markup, no control codes.

A transcript is untrusted input, and so are file names and arguments. Rich markup (``[/]``,
``[link=...]``) must print as typed, and terminal control sequences (ESC, CSI, OSC 8 links, BEL,
``\r``, backspace, C1 controls, DEL, bidirectional overrides) must reach the output only as
visible escapes, in every command, on stdout and stderr.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from session_store_mongo.cli.render import BODY_CHARS
from session_store_protocol import SessionKey, SessionStoreEntry
from tests.cli_support import LiveCli, invoke

MARKUP = "[/] [link=file:///etc/passwd]click[/link] [bold]B[/bold]"
CONTROLS = (
    "\x1b[31mRED\x1b[0m \x1b]8;;http://evil.example/\x07LINK\x1b]8;;\x07 bell\x07 cr\r bs\x08 "
    "csi\x9b31m del\x7f \u202egnp.exe \u2066isolate\u2069 split emoji "
)
SURROGATE = "\ud83d"
"""Half of an emoji: valid in JSON and stored as it is, but no terminal encoding prints it."""
HOSTILE = f"Fix the {MARKUP} parser {CONTROLS}{SURROGATE}"
"""The text put into every stored field: markup first, so shortened titles keep it."""
PROJECT = "proj [bold]P \x1b[31m\u202e"
SESSION = "sess [link=file:passwd]S \x1b]8;;x\x07\r"
AGENT = "agent-\x1b[2J[red]"
"""File names (no ``/``) that hold markup and control characters."""
RAW = ["\x1b", "\x07", "\r", "\x08", "\x9b", "\x7f", "\u202e", "\u2066", "\u2069", "\ud83d"]
"""Characters that must never reach the output as they are."""


def transcript() -> list[dict[str, Any]]:
    """Entries carrying the hostile text in every field the CLI shows."""
    return [
        {"type": "user", "uuid": "u1", "message": {"role": "user", "content": HOSTILE}},
        {
            "type": "assistant",
            "uuid": "u2",
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": HOSTILE},
                    {"type": "tool_use", "id": "t1", "name": HOSTILE, "input": {HOSTILE: HOSTILE}},
                ],
            },
        },
        {
            "type": "user",
            "uuid": "u3",
            "message": {
                "role": HOSTILE,
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": HOSTILE}],
            },
        },
        {"type": "custom-title", "customTitle": HOSTILE, "sessionId": SESSION},
        {"type": HOSTILE, "uuid": "u5", "note": HOSTILE},
    ]


def write_tree(root: Path) -> Path:
    """A projects root whose project, session and subagent names are hostile too."""
    project = root / PROJECT
    session = project / f"{SESSION}.jsonl"
    subagent = project / SESSION / "subagents" / f"{AGENT}.jsonl"
    subagent.parent.mkdir(parents=True)
    lines = [json.dumps(entry) for entry in transcript()]
    session.write_text(
        "\n".join([*lines, "{not json " + json.dumps(HOSTILE)]) + "\n", encoding="utf-8"
    )
    subagent.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def assert_shown_literally(result: Result) -> None:
    """No raw control character anywhere in the output; no markup error, no traceback."""
    output = result.stdout + result.stderr
    for char in RAW:
        assert char not in output, f"raw {char!r} in output:\n{output}"
    assert "Traceback" not in output
    assert "MarkupError" not in output


@pytest.fixture(scope="module")
def hostile(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCli]:
    """A database holding the hostile transcripts, imported through the CLI."""
    cli = LiveCli(mongo_url)
    root = write_tree(tmp_path_factory.mktemp("hostile"))
    result = invoke("--url", cli.url, "--database", cli.database, "import", str(root))
    assert result.exit_code == 1, result.output  # the malformed line
    assert_shown_literally(result)
    assert "\\x1b[31m" in result.stderr  # the path in the error line, escaped
    assert "[bold]P" in result.stderr
    yield cli
    cli.drop()


def run(cli: LiveCli, *args: str) -> Result:
    return invoke("--url", cli.url, "--database", cli.database, "--project", PROJECT, *args)


@pytest.mark.live
@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["show", SESSION],
        ["show", SESSION, "--subpath", f"subagents/{AGENT}"],
        ["stats"],
        ["prune", "--older-than", "0s", "--dry-run"],
    ],
    ids=["list", "show", "show-subagent", "stats", "prune"],
)
def test_tables_show_stored_text_literally(hostile: LiveCli, args: list[str]) -> None:
    """Titles, prompts, messages, tool calls, ids and project keys print as typed, escaped."""
    result = run(hostile, *args)
    assert result.exit_code == 0, result.output
    assert_shown_literally(result)
    assert any(text in result.stdout for text in (MARKUP, "[bold]P", "[link=file:passwd]S"))
    assert "\\x1b" in result.stdout


@pytest.mark.live
def test_hostile_text_cut_by_show_stays_literal(hostile: LiveCli) -> None:
    """A message cut at every offset of the hostile text prints nothing raw, no markup error.

    Each entry's cut (at ``BODY_CHARS``) falls one character further into the hostile text.
    """
    project = "long hostile"
    key: SessionKey = {"project_key": project, "session_id": "long"}
    text = HOSTILE * (BODY_CHARS // len(HOSTILE) + 2)
    entries: list[SessionStoreEntry] = [
        {"type": "user", "message": {"role": "user", "content": "x" * shift + text}}
        for shift in range(len(HOSTILE))
    ]
    hostile.store(lambda store: store.append(key, entries))
    result = invoke(
        "--url", hostile.url, "--database", hostile.database, "--project", project, "show", "long"
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_shown_literally(result)
    assert result.stdout.count("more characters not shown: show --json") == len(entries)


@pytest.mark.live
def test_markup_in_a_title_is_printed_not_parsed(hostile: LiveCli) -> None:
    """A custom title with [/] and a [link=...] is listed as written (no MarkupError, no link)."""
    result = run(hostile, "list")
    assert result.exit_code == 0, result.output
    assert f"Fix the {MARKUP} parser" in result.stdout


@pytest.mark.live
@pytest.mark.parametrize(
    "args", [["list", "--json"], ["show", SESSION, "--json"]], ids=["list", "show"]
)
def test_json_output_escapes_control_characters_and_keeps_values(
    hostile: LiveCli, args: list[str]
) -> None:
    """JSON output holds no raw control character, and parses back to the stored values."""
    result = run(hostile, *args)
    assert result.exit_code == 0, result.output
    assert_shown_literally(result)
    if args[0] == "list":
        [row] = json.loads(result.stdout)
        assert row["session_id"] == SESSION
    else:
        assert [json.loads(line) for line in result.stdout.splitlines()] == transcript()


@pytest.mark.live
def test_export_names_hostile_paths_literally(hostile: LiveCli, tmp_path: Path) -> None:
    """Export writes the files under their real names and prints those names escaped."""
    result = run(hostile, "export", SESSION, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert_shown_literally(result)
    written = tmp_path / PROJECT / f"{SESSION}.jsonl"
    assert [json.loads(line) for line in written.read_text().splitlines()] == transcript()
    assert "wrote " in result.stdout


@pytest.mark.live
def test_errors_quote_hostile_input_literally(hostile: LiveCli) -> None:
    """A missing session named with markup and control codes: one escaped error line."""
    result = run(hostile, "delete", f"missing {HOSTILE.replace(SURROGATE, '')}", "--yes")
    assert result.exit_code == 1
    assert_shown_literally(result)
    assert "not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.live
@pytest.mark.parametrize("command", ["show", "delete", "export"])
def test_a_session_id_no_store_accepts_is_a_usage_error(hostile: LiveCli, command: str) -> None:
    """A session id the store refuses as a key (a lone surrogate): exit 2, one escaped line."""
    extra = {"delete": ["--yes"], "export": ["--out", "unused"]}.get(command, [])
    result = run(hostile, command, f"bad {SURROGATE}", *extra)
    assert result.exit_code == 2
    assert_shown_literally(result)
    assert "surrogate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.live
def test_delete_confirms_a_hostile_session_literally(mongo_url: str, tmp_path: Path) -> None:
    """Deleting a session with a hostile id prints that id escaped."""
    cli = LiveCli(mongo_url)
    try:
        write_tree(tmp_path)
        invoke("--url", cli.url, "--database", cli.database, "import", str(tmp_path))
        result = run(cli, "delete", SESSION, "--yes")
        assert result.exit_code == 0, result.output
        assert_shown_literally(result)
        assert "deleted session sess [link=file:passwd]S \\x1b]8;;x" in result.stdout
    finally:
        cli.drop()


@pytest.mark.live
def test_file_name_the_store_refuses_is_named_and_skipped(mongo_url: str, tmp_path: Path) -> None:
    """An undecodable file name (a lone surrogate as session id) is reported; the rest imports."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "good.jsonl").write_text('{"type":"user","uuid":"g"}\n', encoding="utf-8")
    (project / os.fsdecode(b"bad-\xff.jsonl")).write_text('{"type":"user"}\n', encoding="utf-8")
    cli = LiveCli(mongo_url)
    try:
        result = invoke("--url", cli.url, "--database", cli.database, "import", str(project))
        assert result.exit_code == 1, result.output
        assert_shown_literally(result)
        assert "bad-\\udcff.jsonl" in result.stderr
        assert cli.store(lambda s: s.size({"project_key": "proj", "session_id": "good"})) == 1
    finally:
        cli.drop()


@pytest.mark.parametrize(
    "args",
    [
        ["list", f"--{CONTROLS}{SURROGATE}"],
        ["import", f"/nowhere/{CONTROLS}{SURROGATE}.jsonl"],
        ["--timeout", CONTROLS + SURROGATE, "list"],
        ["prune", "--older-than", CONTROLS + SURROGATE],
        ["show"],
    ],
    ids=["unknown option", "missing path", "bad timeout", "bad duration", "missing argument"],
)
def test_usage_errors_quote_input_literally(args: list[str]) -> None:
    """Usage errors that quote what was typed show its control characters escaped; exit 2."""
    result = invoke("--url", "mongodb://127.0.0.1:1", *args)
    assert result.exit_code == 2
    assert_shown_literally(result)
