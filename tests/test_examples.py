"""Every script in examples/ runs against the live server and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.support import REPO_ROOT, unique_name

pytestmark = pytest.mark.live

EXAMPLES = REPO_ROOT / "examples"
FIXTURE_SESSION = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


def run_example(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/SCRIPT ARGS`` with this interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    """Return the stdout of a run that exited 0, or fail showing both streams."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
async def database(live_client: AsyncMongoClient[Any]) -> AsyncIterator[Callable[[str], str]]:
    """Hands out fresh database names with a given prefix and drops them afterwards."""
    names: list[str] = []

    def fresh(prefix: str) -> str:
        names.append(unique_name(prefix))
        return names[-1]

    yield fresh
    for name in names:
        await live_client.drop_database(name)


async def test_demo_writes_resumes_and_lists_with_the_cli(
    database: Callable[[str], str], live_client: AsyncMongoClient[Any], mongo_url: str
) -> None:
    """The demo's processes write, resume and list one session, and it stays in the database."""
    name = database("demo")
    # As with a MONGO_URL of the user's: no claim that a throw-away server was started.
    out = succeeded(run_example("demo.py", "--database", name, env={"SECANTUS_STARTED": ""}))
    assert "throw-away" not in out
    assert "The data stays there" in out
    session = re.search(r"writes a conversation \(session ([0-9a-f-]{36})\)", out)
    assert session is not None, out
    session_id = session[1]
    assert "discovered store kinds: memory, mongo" in out
    assert "distribution session-store-mongo" in out
    assert f"loaded 7 entries of {session_id}" in out
    assert "subagents/agent-a7c41e9: 4 entries" in out
    cli_part = out.split("Step 4.", 1)[1]
    assert f"show {session_id}" in cli_part
    assert cli_part.count("CI fails on Node 18") >= 2  # in `list`, and in `show`
    collections = "session_store_entries, session_store_entry_chunks, session_store_sessions"
    assert f"database '{name}', collections {collections}" in out
    password = re.search(r"://[^:/@]*:([^@/]+)@", mongo_url)
    if password:
        assert password[1] not in out
    sessions = live_client[name]["session_store_sessions"]
    stored = await sessions.count_documents({"session_id": session_id})
    assert stored == 2  # the main transcript and the subagent's


def test_demo_exits_non_zero_without_a_server_url() -> None:
    """Without MONGO_URL the demo says how to run it and exits with status 2."""
    env = {key: value for key, value in os.environ.items() if key != "MONGO_URL"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "make demo" in result.stderr


def test_demo_resume_of_an_unknown_session_fails(database: Callable[[str], str]) -> None:
    """The demo's reader step exits non-zero when the session is not in the store."""
    result = run_example("demo.py", "--resume", "no-such-session", "--database", database("demo"))
    assert result.returncode != 0
    assert "session no-such-session not found" in result.stdout + result.stderr


def test_quickstart_appends_loads_and_lists(database: Callable[[str], str]) -> None:
    """The quick start stores two entries once (the retried batch adds nothing) and lists it."""
    out = succeeded(run_example("quickstart.py", env={"MONGO_DATABASE": database("quick")}))
    loaded = next(line for line in out.splitlines() if line.startswith("loaded:"))
    assert loaded.count("'uuid'") == 2
    assert "'content': 'Hello'" in loaded
    assert "sessions: [{'session_id': 'session-1', 'mtime': " in out


def test_minimal_harness_imports_and_reads_the_fixture(database: Callable[[str], str]) -> None:
    """The harness imports the fixture session and reads title, messages and subagent back."""
    out = succeeded(run_example("minimal_harness.py", "--database", database("agents_")))
    assert f"ClaudeAgentOptions ready: resume={FIXTURE_SESSION}" in out
    assert f"session {FIXTURE_SESSION}: title='Safari login button fix'" in out
    assert "first prompt: Fix the login form: the submit button does nothing on Safari." in out
    assert "9 messages:" in out
    assert "user: Yes please, and add a test. Unicode check: naïve café ✓ 日本" in out
    assert "subagent a1b2c3d: 4 messages" in out


def test_minimal_harness_refuses_a_database_outside_its_allow_list() -> None:
    """A wire config naming a database outside the harness's prefix fails with exit 1."""
    result = run_example("minimal_harness.py", "--database", "billing")
    assert result.returncode == 1
    assert "database 'billing' is not allowed" in result.stderr


def test_multi_tenant_isolates_tenants_and_refuses_bad_configs(
    database: Callable[[str], str],
) -> None:
    """Tenants share one client, see only their own session, and bad wire configs are refused."""
    first, second = database("tenant_"), database("tenant_")
    out = succeeded(run_example("multi_tenant.py", "--tenants", first, second))
    assert "2 tenant stores, 1 shared MongoDB client" in out
    assert f"{first} sees ticket-4711: ['question from {first}']" in out
    assert f"{second} sees ticket-4711: ['question from {second}']" in out
    refused = [line for line in out.splitlines() if line.startswith("refused ")]
    assert len(refused) == 3
    assert "'admin' is reserved" in refused[0]
    assert "'billing' is not allowed" in refused[1]
    assert "wire options ['url'] are not accepted" in refused[2]


def test_encryption_seals_then_forgets(database: Callable[[str], str]) -> None:
    """The encryption example stores ciphertext, then forget makes the session unreadable."""
    out = succeeded(run_example("encryption.py", "--database", database("enc")))
    assert "'message': 'Salaries: alice 120k, bob 95k'" in out
    assert "readable 'alice' in the document: False" in out
    assert "forget destroyed 1 data key; 1 transcript(s)" in out
    assert "load after forget: KeyDestroyedError:" in out
    assert "sessions listed after forget: []" in out


def test_retention_prunes_only_the_idle_session(database: Callable[[str], str]) -> None:
    """One pass of the retention loop deletes the backdated session and keeps the fresh one."""
    out = succeeded(run_example("retention.py", "--database", database("ret"), "--once"))
    assert "sessions before: ['active-session', 'idle-session']" in out
    assert "pruned 1 session(s) idle for more than 30 days: ['idle-session']" in out
    assert "sessions after: ['active-session']" in out
    assert "subagent transcripts left in the idle session: []" in out


def test_live_follow_shows_another_process_writing_and_resumes_without_gaps(
    database: Callable[[str], str],
) -> None:
    """The follower prints every frame of the writing process once, resumes, ends on delete."""
    out = succeeded(run_example("live_follow.py", "--database", database("follow")))
    shown = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] + "]" for line in shown] == [
        "[main #1]", "[main #2]", "[main #3]", "[main #4]", "[subagents/agent-7f3a #1]",
    ]  # fmt: skip
    assert "user: The login button does nothing on Safari." in shown[0]
    assert "viewer closed at {None: 2}; reopening after it" in out
    assert out.rstrip().endswith("follow ended: the session was deleted = True")
