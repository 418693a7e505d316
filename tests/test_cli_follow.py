"""``show --follow`` and ``show --subagents``: the CLI's live view of a session."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey
from tests.cli_support import (
    MAIN,
    PROJECT,
    PROJECT_DIR,
    SUBAGENT_FILE,
    SUBPATH,
    LiveCli,
    invoke,
)
from tests.servers import running_server

pytestmark = pytest.mark.live

MAIN_KEY: SessionKey = {"project_key": PROJECT, "session_id": MAIN}
SUB_KEY: SessionKey = {**MAIN_KEY, "subpath": SUBPATH}


@pytest.fixture
def imported(mongo_url: str) -> Iterator[LiveCli]:
    """The fixture project imported into a database of its own, dropped afterwards."""
    cli = LiveCli(mongo_url)
    result = cli("import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    yield cli
    cli.drop()


def _jsonl(path: Any) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def _start(cli: LiveCli, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "session_store_mongo.cli", *cli.global_options(), *args],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if k != "MONGO_URL"}, "COLUMNS": "200"},
    )


async def _lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    """The next ``count`` lines the process prints, within 30 seconds."""
    assert process.stdout is not None
    lines = []
    for _ in range(count):
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the process ended early"
        lines.append(line.decode())
    return lines


async def _append(cli: LiveCli, key: SessionKey, entries: list[Any]) -> None:
    async with MongoSessionStore(url=cli.url, database=cli.database) as store:
        await store.append(key, entries)


async def test_follow_json_prints_stored_then_new_entries_and_ctrl_c_exits_0(
    imported: LiveCli,
) -> None:
    """``show --follow --json``: the stored entries, then new ones; SIGINT ends it with 0."""
    process = await _start(imported, "show", MAIN, "--follow", "--json")
    stored = _jsonl(PROJECT_DIR / f"{MAIN}.jsonl")
    assert [json.loads(line) for line in await _lines(process, len(stored))] == stored
    fresh = [{"type": "user", "uuid": "live-1"}, {"type": "assistant", "uuid": "live-2"}]
    await _append(imported, MAIN_KEY, fresh)
    assert [json.loads(line) for line in await _lines(process, 2)] == fresh
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert out == b""
    assert b"Traceback" not in err


async def test_follow_subagents_labels_prints_literally_and_ends_on_delete(
    imported: LiveCli,
) -> None:
    """Subagent rows are labelled, stored markup and escapes print as text, a delete ends it.

    The process then exits 0 by itself and says the session was deleted.
    """
    process = await _start(imported, "show", MAIN, "--follow", "--subagents")
    hostile = "[link=file:///etc/passwd]click[/link] \x1b[2J"
    await _append(imported, SUB_KEY, [{"type": "user", "message": {"content": hostile}}])
    assert process.stdout is not None
    seen = ""
    while "[link=" not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the process ended early"
        seen += line.decode()
    assert "agent-a1b2c3d" in seen  # the subagent's stored rows, labelled
    assert "[link=file:///etc/passwd]click[/link] \\x1b[2J" in seen
    assert "\x1b[2J" not in seen
    async with MongoSessionStore(url=imported.url, database=imported.database) as store:
        await store.delete(MAIN_KEY)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert f"session {MAIN} was deleted" in err.decode()


def test_show_subagents_json_labels_every_entry_with_its_transcript(imported: LiveCli) -> None:
    """``show --subagents --json``: the main transcript, then the subagent's, each labelled."""
    result = imported("show", MAIN, "--subagents", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    main = [line for line in lines if line["subpath"] is None]
    sub = [line for line in lines if line["subpath"] == SUBPATH]
    assert main + sub == lines
    assert [line["entry"] for line in main] == _jsonl(PROJECT_DIR / f"{MAIN}.jsonl")
    assert [line["entry"] for line in sub][:-1] == _jsonl(SUBAGENT_FILE)
    assert [line["seq"] for line in main] == sorted(line["seq"] for line in main)


def test_subagents_with_a_subpath_is_a_usage_error(imported: LiveCli) -> None:
    """``--subagents`` shows a whole session, so it refuses ``--subpath`` (exit 2)."""
    result = imported("show", MAIN, "--subpath", SUBPATH, "--subagents")
    assert result.exit_code == 2
    assert "--subagents" in result.stderr


async def test_ctrl_c_ends_a_follow_at_once_while_the_server_is_down(secantusd: Path) -> None:
    """The outage is reported on one line; SIGINT then exits 0 without waiting for a server."""
    with running_server(secantusd) as server:
        cli = LiveCli(server.url)
        # Server selection waits 8 s: longer than the bound below, so a close that waits for
        # a server (as it did) fails the test.
        process = await _start(cli, "--timeout", "8", "show", MAIN, "--follow", "--json")
        entry = {"type": "user", "uuid": "before-the-outage"}
        await _append(cli, MAIN_KEY, [entry])
        assert [json.loads(line) for line in await _lines(process, 1)] == [entry]  # following
        server.stop(10)
        assert process.stderr is not None
        while b"reconnecting (for up to 60s)" not in await asyncio.wait_for(
            process.stderr.readline(), 30
        ):
            pass
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 5)
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err


async def test_ctrl_c_ends_a_follow_at_once_after_the_server_came_back(
    secantusd: Path, tmp_path: Path
) -> None:
    """Killed and restarted mid-follow, the server is followed again; SIGINT then exits 0.

    The follow's cancelled request used to drop the cancellation now and then (Python 3.11's
    ``asyncio.wait_for`` does when the send completes as it is cancelled) and follow on until
    killed: each round is one more chance to catch that.
    """
    with running_server(
        secantusd, "--sync-on-commit", storage_path=str(tmp_path / "data")
    ) as server:
        cli = LiveCli(server.url)
        for round_ in range(2):
            process = await _start(cli, "--timeout", "8", "show", MAIN, "--follow", "--json")
            before = {"type": "user", "uuid": f"before-restart-{round_}"}
            await _append(cli, MAIN_KEY, [before])
            stored = await _lines(process, 2 * round_ + 1)  # two entries a round before this
            assert json.loads(stored[-1]) == before  # following
            server.kill()
            server.start()
            after = {"type": "user", "uuid": f"after-restart-{round_}"}
            await _append(cli, MAIN_KEY, [after])
            assert [json.loads(line) for line in await _lines(process, 1)] == [after]
            process.send_signal(signal.SIGINT)
            try:
                _, err = await asyncio.wait_for(process.communicate(), 10)
            except asyncio.TimeoutError:
                process.kill()
                raise AssertionError(f"round {round_}: SIGINT ignored for 10 s") from None
            assert process.returncode == 0, err.decode()
            assert b"Traceback" not in err


async def test_follow_reconnects_for_reconnect_timeout_then_exits_1_saying_so(
    secantusd: Path,
) -> None:
    """``--reconnect-timeout 4``: the outage line names 4 s, and the follow ends after them."""
    with running_server(secantusd) as server:
        cli = LiveCli(server.url)
        process = await _start(
            cli, "--timeout", "1", "show", MAIN, "--follow", "--json", "--reconnect-timeout", "4"
        )
        entry = {"type": "user", "uuid": "before-the-outage"}
        await _append(cli, MAIN_KEY, [entry])
        assert [json.loads(line) for line in await _lines(process, 1)] == [entry]  # following
        server.stop(10)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    text = err.decode()
    assert process.returncode == 1, text
    assert "reconnecting (for up to 4s)" in text
    [error] = [line for line in text.splitlines() if line.startswith("error:")]
    assert "gave up after" in error
    assert error.endswith("(reconnect_timeout=4s)")
    assert "Traceback" not in text


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e400", "86401", "abc"])
def test_a_bad_reconnect_timeout_is_a_usage_error(value: str) -> None:
    """Negative, not finite, past a day or not a number: exit 2 naming the option."""
    result = invoke(
        "--url", "mongodb://127.0.0.1:1/", "show", MAIN, "--follow", "--reconnect-timeout", value
    )
    assert result.exit_code == 2, result.output
    assert "--reconnect-timeout" in result.output
    assert "Traceback" not in result.output


def test_reconnect_timeout_without_follow_is_a_usage_error() -> None:
    """The option only means something to ``--follow``: alone it is refused (exit 2)."""
    result = invoke("--url", "mongodb://127.0.0.1:1/", "show", MAIN, "--reconnect-timeout", "5")
    assert result.exit_code == 2
    assert "--reconnect-timeout is for --follow" in result.stderr
