"""The real client: Claude Code, run by the SDK, mirroring its transcripts into MongoDB.

Every test runs the Claude Code CLI bundled in ``claude-agent-sdk`` through
``claude_agent_sdk.query`` with ``session_store=`` a ``MongoSessionStore`` on the live server
(a database per test), against ``FakeAnthropicAPI`` on loopback, each run with an empty config
directory and home of its own. The store is compared with what the CLI handed the SDK (captured
by ``RecordingStore``), never with the CLI's local file, which keeps lines it does not mirror.

Run alone: ``make test PYTEST_ARGS=tests/test_real_client.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    StreamEvent,
    delete_session_via_store,
    fold_session_summary,
    list_sessions_from_store,
    list_subagents_from_store,
    query,
)
from pymongo import AsyncMongoClient

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey, SessionStore, SessionStoreEntry
from tests.fake_anthropic_api import FakeAnthropicAPI, Reply
from tests.real_client import (
    NO_NONESSENTIAL_TRAFFIC,
    ClientSandbox,
    DroppingStore,
    RecordingStore,
    conversation,
    result_of,
    run_in_new_process,
    run_turn,
)
from tests.support import unique_name

pytestmark = [pytest.mark.live, pytest.mark.sdk]

FIRST_PROMPT = "Where is the login form handled?"
FIRST_REPLY = "In src/login.ts, by handleSubmit."
SECOND_PROMPT = "And where is it tested?"
SECOND_REPLY = "In tests/login.spec.ts."
AGENT_TOOL_ID = "toolu_fake_agent_1"
AGENT_DESCRIPTION = "Find the login tests"
AGENT_REPLY = "Found tests/login.spec.ts."
MIRROR_WAIT_SECONDS = 15.0
BATCHED_GRACE_SECONDS = 1.0


@asynccontextmanager
async def scratch_store(mongo_url: str) -> AsyncIterator[MongoSessionStore]:
    """The store under test on the live server, in a database of its own, dropped afterwards."""
    name = unique_name("e2e")
    try:
        async with MongoSessionStore(url=mongo_url, database=name) as store:
            yield store
    finally:
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        await client.drop_database(name)
        await client.close()


@contextmanager
def fake_api() -> Iterator[FakeAnthropicAPI]:
    """The fake Messages API; the client must not have tried to reach past loopback."""
    with FakeAnthropicAPI() as api:
        yield api
    assert api.egress_attempts == []


@pytest.fixture
def api() -> Iterator[FakeAnthropicAPI]:
    with fake_api() as fake:
        yield fake


@pytest.fixture
async def store(mongo_url: str) -> AsyncIterator[MongoSessionStore]:
    async with scratch_store(mongo_url) as scratch:
        yield scratch


def sandbox_factory(root: Path, api: FakeAnthropicAPI) -> Callable[[], ClientSandbox]:
    """Hands out sandboxes under ``root``: each an empty config dir and home, one project."""
    project = root / "acme-webapp"

    def make() -> ClientSandbox:
        return ClientSandbox.create(root / unique_name("run"), project, api.client_env())

    return make


@pytest.fixture
def new_sandbox(tmp_path: Path, api: FakeAnthropicAPI) -> Callable[[], ClientSandbox]:
    return sandbox_factory(tmp_path, api)


def key_of(sandbox: ClientSandbox, session_id: str, subpath: str | None = None) -> SessionKey:
    key: SessionKey = {"project_key": sandbox.project_key, "session_id": session_id}
    if subpath is not None:
        key["subpath"] = subpath
    return key


async def assert_store_holds_what_was_sent(store: SessionStore, recorder: RecordingStore) -> None:
    """Every transcript the SDK appended to loads back as exactly what it sent, in order."""
    assert recorder.appends, "the SDK appended nothing"
    for key in recorder.appended_keys():
        assert await store.load(key) == recorder.sent(key), f"{key} is not what the CLI sent"


def assert_carries_first_turn(request: dict[str, Any], prompt: str) -> None:
    """The request replays the first turn (prompt, then answer) before the new ``prompt``."""
    said = conversation(request)
    expected = [("user", FIRST_PROMPT), ("assistant", FIRST_REPLY), ("user", prompt)]
    replayed = [line for line in said if line in expected]
    assert replayed == expected, f"the request does not replay the first turn: {said}"


FIRST_TURN = (Reply.text(FIRST_REPLY),)
"""The model answers the first prompt."""

SUBAGENT_TURN = (
    Reply.tool_use(
        "Agent",
        {
            "description": AGENT_DESCRIPTION,
            "prompt": "List the test files for the login form.",
            "subagent_type": "general-purpose",
            "run_in_background": False,
        },
        tool_id=AGENT_TOOL_ID,
    ),
    Reply.text(AGENT_REPLY),  # the subagent's own request
    Reply.text(FIRST_REPLY),  # the main agent again, given the subagent's report
)
"""The model delegates to a foreground subagent through the Agent tool, then answers."""


async def ask_first(
    sandbox: ClientSandbox,
    api: FakeAnthropicAPI,
    store: SessionStore | None,
    replies: tuple[Reply, ...] = FIRST_TURN,
) -> str:
    """Ask the first prompt with ``replies`` scripted, mirroring to ``store``; the session id."""
    api.script(*replies)
    return result_of(await run_turn(FIRST_PROMPT, sandbox.options(store))).session_id


@dataclass(frozen=True)
class MirroredRun:
    """A first prompt asked through the store under test, and what the SDK appended."""

    sandbox: ClientSandbox
    store: SessionStore
    recorder: RecordingStore
    session_id: str

    @classmethod
    async def ask(
        cls,
        sandbox: ClientSandbox,
        api: FakeAnthropicAPI,
        store: SessionStore,
        replies: tuple[Reply, ...] = FIRST_TURN,
    ) -> MirroredRun:
        recorder = RecordingStore(store)
        return cls(sandbox, store, recorder, await ask_first(sandbox, api, recorder, replies))

    @property
    def key(self) -> SessionKey:
        return key_of(self.sandbox, self.session_id)

    @property
    def subagent_key(self) -> SessionKey:
        """The key of the run's one subagent transcript."""
        [key] = [key for key in self.recorder.appended_keys() if "subpath" in key]
        return key


# -- a first turn (one run, several checks) ---------------------------------------------------


@pytest.fixture(scope="module")
async def first_turn(
    mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MirroredRun]:
    """One first turn, read (never changed) by the tests below."""
    async with scratch_store(mongo_url) as store:
        with fake_api() as api:
            sandbox = sandbox_factory(tmp_path_factory.mktemp("first-turn"), api)()
            run = await MirroredRun.ask(sandbox, api, store)
        yield run


async def test_first_turn_store_holds_exactly_what_the_cli_sent(
    first_turn: MirroredRun,
) -> None:
    """After one turn the store holds exactly the entries the CLI sent, in order."""
    assert first_turn.recorder.appended_keys() == [first_turn.key]
    await assert_store_holds_what_was_sent(first_turn.store, first_turn.recorder)
    types = [entry["type"] for entry in first_turn.recorder.sent(first_turn.key)]
    assert types.index("user") < types.index("assistant")


async def test_first_turn_summary_is_the_sdks_own_fold(first_turn: MirroredRun) -> None:
    """The stored summary equals ``fold_session_summary`` over the batches the SDK appended."""
    expected = None
    for batch in first_turn.recorder.batches(first_turn.key):
        expected = fold_session_summary(expected, first_turn.key, batch)
    assert expected is not None
    [summary] = await first_turn.store.list_session_summaries(first_turn.key["project_key"])
    assert summary["session_id"] == first_turn.session_id
    assert summary["data"] == expected["data"]
    assert summary["data"]["first_prompt"] == FIRST_PROMPT


async def test_first_turn_is_listed_by_the_store_and_the_sdk(first_turn: MirroredRun) -> None:
    """``list_sessions`` and the SDK's ``list_sessions_from_store`` both show the session."""
    listed = await first_turn.store.list_sessions(first_turn.key["project_key"])
    assert [entry["session_id"] for entry in listed] == [first_turn.session_id]
    [info] = await list_sessions_from_store(first_turn.store, str(first_turn.sandbox.cwd))
    assert info.session_id == first_turn.session_id
    assert info.first_prompt == FIRST_PROMPT


# -- a subagent --------------------------------------------------------------------------------


@pytest.fixture
async def subagent_run(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> MirroredRun:
    """A turn in which the model delegates to a subagent, mirrored to the store under test."""
    return await MirroredRun.ask(new_sandbox(), api, store, SUBAGENT_TURN)


async def test_subagent_transcript_lands_under_its_subpath_with_metadata(
    subagent_run: MirroredRun,
) -> None:
    """A subagent's transcript and metadata land under ``subagents/agent-<id>``; listed."""
    run, store = subagent_run, subagent_run.store
    subpath = run.subagent_key["subpath"]
    assert subpath.startswith("subagents/agent-")
    await assert_store_holds_what_was_sent(store, run.recorder)

    stored = await store.load(run.subagent_key) or []
    metadata = [entry for entry in stored if entry["type"] == "agent_metadata"]
    assert metadata, "the subagent's metadata was not stored"
    assert metadata[-1]["toolUseId"] == AGENT_TOOL_ID
    assert metadata[-1]["description"] == AGENT_DESCRIPTION
    local = run.sandbox.config_dir / "projects" / run.key["project_key"] / run.session_id
    sidecar = json.loads((local / f"{subpath}.meta.json").read_text())
    assert {k: v for k, v in metadata[-1].items() if k != "type"} == sidecar

    assert await store.list_subkeys(run.key) == [subpath]
    agent_id = subpath.removeprefix("subagents/agent-")
    cwd = str(run.sandbox.cwd)
    assert await list_subagents_from_store(store, run.session_id, cwd) == [agent_id]


async def test_delete_through_the_sdk_removes_the_session_and_its_subagents(
    subagent_run: MirroredRun,
) -> None:
    """``delete_session_via_store`` leaves neither the session nor its subagent transcript."""
    run, store = subagent_run, subagent_run.store
    assert await store.load(run.subagent_key)

    await delete_session_via_store(store, run.session_id, str(run.sandbox.cwd))
    assert await store.load(run.key) is None
    assert await store.load(run.subagent_key) is None
    assert await store.list_subkeys(run.key) == []
    assert await store.list_sessions(run.key["project_key"]) == []
    assert await list_sessions_from_store(store, str(run.sandbox.cwd)) == []


# -- resume and continue -----------------------------------------------------------------------


async def test_resume_in_a_new_process_replays_the_turn_from_mongodb(
    new_sandbox: Callable[[], ClientSandbox],
    api: FakeAnthropicAPI,
    store: MongoSessionStore,
) -> None:
    """A new process with an empty config dir resumes: the API sees turn 1; the store holds both."""
    first = await MirroredRun.ask(new_sandbox(), api, store)
    api.script(Reply.text(SECOND_REPLY))
    resumed = await run_in_new_process(
        new_sandbox(), store.database, SECOND_PROMPT, resume=first.session_id
    )

    assert resumed.session_id == first.session_id
    assert resumed.result == SECOND_REPLY
    assert_carries_first_turn(api.message_requests[-1], SECOND_PROMPT)
    both = RecordingStore(store, first.recorder.appends + resumed.appends)
    await assert_store_holds_what_was_sent(store, both)
    stored = await store.load(first.key) or []
    assert [e["message"]["content"] for e in stored if e["type"] == "user"] == [
        FIRST_PROMPT,
        SECOND_PROMPT,
    ]


async def test_continue_conversation_finds_the_session_through_list_sessions(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> None:
    """``continue_conversation=True`` with an empty config dir picks the stored session."""
    first = await MirroredRun.ask(new_sandbox(), api, store)
    api.script(Reply.text(SECOND_REPLY))
    continued = RecordingStore(store, first.recorder.appends)
    options = new_sandbox().options(continued, continue_conversation=True)
    result = result_of(await run_turn(SECOND_PROMPT, options))

    assert result.session_id == first.session_id
    assert_carries_first_turn(api.message_requests[-1], SECOND_PROMPT)
    await assert_store_holds_what_was_sent(store, continued)


# -- flush modes -------------------------------------------------------------------------------


async def stored_while_the_turn_runs(
    sandbox: ClientSandbox, api: FakeAnthropicAPI, store: SessionStore, flush: str
) -> tuple[list[SessionStoreEntry], RecordingStore, SessionKey]:
    """Hold the model's answer open mid-stream and read the store meanwhile.

    Returns what the store held while the answer was held (waiting up to
    ``MIRROR_WAIT_SECONDS`` for the prompt to appear with ``"eager"``, ``BATCHED_GRACE_SECONDS``
    otherwise), the recorder, and the session's key.
    """
    release = threading.Event()
    api.script(Reply.text(FIRST_REPLY, release=release))
    recorder = RecordingStore(store)
    options = sandbox.options(recorder, session_store_flush=flush, include_partial_messages=True)
    held: list[SessionStoreEntry] | None = None
    key: SessionKey | None = None
    try:
        async for message in query(prompt=FIRST_PROMPT, options=options):
            if held is None and isinstance(message, StreamEvent):
                key = key_of(sandbox, message.session_id)
                wait = MIRROR_WAIT_SECONDS if flush == "eager" else BATCHED_GRACE_SECONDS
                held = await poll_for_prompt(store, key, wait)
                release.set()
    finally:
        release.set()
    assert held is not None, "the answer was never streamed"
    assert key is not None
    return held, recorder, key


async def poll_for_prompt(
    store: SessionStore, key: SessionKey, seconds: float
) -> list[SessionStoreEntry]:
    """What ``key`` holds once it holds the first prompt, or after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        entries = await store.load(key) or []
        prompts = [e for e in entries if e["type"] == "user"]
        if prompts or asyncio.get_running_loop().time() > deadline:
            return entries
        await asyncio.sleep(0.05)


async def test_eager_flush_stores_entries_while_the_turn_is_running(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> None:
    """With ``"eager"`` the prompt is in the store while the answer is still streaming."""
    held, recorder, _ = await stored_while_the_turn_runs(new_sandbox(), api, store, "eager")
    assert [e["message"]["content"] for e in held if e["type"] == "user"] == [FIRST_PROMPT]
    assert [e for e in held if e["type"] == "assistant"] == []
    await assert_store_holds_what_was_sent(store, recorder)


async def test_batched_flush_stores_entries_at_the_end_of_the_turn(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> None:
    """With ``"batched"`` nothing is stored mid-turn; the whole turn lands at its end."""
    sandbox = new_sandbox()
    held, recorder, key = await stored_while_the_turn_runs(sandbox, api, store, "batched")
    assert held == []
    local = sandbox.config_dir / "projects" / key["project_key"] / f"{key['session_id']}.jsonl"
    assert FIRST_PROMPT in local.read_text(), "the CLI had not written the prompt yet"
    await assert_store_holds_what_was_sent(store, recorder)
    assert [e["type"] for e in await store.load(key) or []].count("assistant") == 1


# -- a broken store fails the tier -------------------------------------------------------------


async def test_a_store_that_drops_an_entry_type_fails_the_tier(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> None:
    """A store losing assistant entries fails the store check, and resume loses the answer."""
    broken = DroppingStore(store, "assistant")
    first = await MirroredRun.ask(new_sandbox(), api, broken)
    with pytest.raises(AssertionError, match="is not what the CLI sent"):
        await assert_store_holds_what_was_sent(broken, first.recorder)

    api.script(Reply.text(SECOND_REPLY))
    options = new_sandbox().options(RecordingStore(broken), resume=first.session_id)
    result_of(await run_turn(SECOND_PROMPT, options))
    with pytest.raises(AssertionError, match="does not replay the first turn"):
        assert_carries_first_turn(api.message_requests[-1], SECOND_PROMPT)


# -- import, export, resume with the local CLI -------------------------------------------------


async def run_cli(*args: str) -> None:
    """Run ``session-store-mongo ARGS`` (``MONGO_URL`` from the environment), which must succeed."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "session-store-mongo"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"session-store-mongo {args} failed:\n{stderr.decode()}"


def project_files(projects: Path, project_key: str) -> dict[str, bytes]:
    """Every file of a project directory in a Claude Code config dir, by relative path."""
    root = projects / project_key
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_import_export_round_trip_is_resumed_by_the_real_cli(
    new_sandbox: Callable[[], ClientSandbox], api: FakeAnthropicAPI, store: MongoSessionStore
) -> None:
    """The CLI's files, imported then exported to a fresh config dir, are what it wrote; it resumes.

    The transcript has a subagent, so its transcript and ``.meta.json`` sidecar go round too.
    """
    written = new_sandbox()
    session_id = await ask_first(written, api, None, SUBAGENT_TURN)
    projects = written.config_dir / "projects"
    await run_cli("--database", store.database, "import", str(projects))

    restored = new_sandbox()
    exported = restored.config_dir / "projects"
    await run_cli(
        "--database", store.database, "--project", restored.project_key,
        "export", session_id, "--out", str(exported),
    )  # fmt: skip
    original_files = project_files(projects, written.project_key)
    exported_files = project_files(exported, restored.project_key)
    assert sorted(exported_files) == sorted(original_files)
    for name, content in original_files.items():
        if name.endswith(".meta.json"):
            assert json.loads(exported_files[name]) == json.loads(content), name
        else:
            assert exported_files[name] == content, name

    api.script(Reply.text(SECOND_REPLY))
    result = result_of(await run_turn(SECOND_PROMPT, restored.options(None, resume=session_id)))
    assert result.session_id == session_id
    assert_carries_first_turn(api.message_requests[-1], SECOND_PROMPT)


# -- the sandbox itself ------------------------------------------------------------------------


async def test_the_egress_trap_catches_the_clis_own_traffic(tmp_path: Path) -> None:
    """Without the off switches the CLI calls out; the trap refuses it at once, and records it."""
    with FakeAnthropicAPI() as trap:
        sandbox = ClientSandbox.create(tmp_path / "run", tmp_path / "project", trap.client_env())
        env = {**sandbox.env, **dict.fromkeys(NO_NONESSENTIAL_TRAFFIC, "")}
        result_of(await run_turn(FIRST_PROMPT, sandbox.options(None, env=env)))
        attempts = trap.egress_attempts
    assert attempts, "the CLI made no call of its own: the trap proves nothing"
    assert all(attempt.startswith("CONNECT ") for attempt in attempts), attempts
