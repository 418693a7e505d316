"""Running the real Claude Code CLI (bundled in ``claude-agent-sdk``) on a fake API and a store.

Usage::

    from tests.real_client import ClientSandbox, RecordingStore, run_turn

    with FakeAnthropicAPI() as api:
        sandbox = ClientSandbox.create(tmp_path / "run1", cwd, api.client_env())
        recorder = RecordingStore(store)
        messages = await run_turn("hello", sandbox.options(recorder))
        recorder.sent(key)             # what the CLI handed the SDK's mirror for ``key``

    # The same turn in a new OS process (its own interpreter, store client and config dir):
    outcome = await run_in_new_process(sandbox, database, "again", resume=session_id)

Every run gets an empty config directory and home of its own (``ClientSandbox``), so whatever a
resumed run knows of earlier turns came from the store. The project directory (``cwd``) is what
the SDK derives the store's ``project_key`` from, so runs that share a session share it.

``python -m tests.real_client`` is the child side of ``run_in_new_process``: it reads a JSON
spec on stdin, runs one turn on a ``MongoSessionStore`` (``MONGO_URL``), and prints what the
SDK appended and the turn's result as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    Message,
    MirrorErrorMessage,
    ResultMessage,
    project_key_for_directory,
    query,
)

from session_store_protocol import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from tests.support import REPO_ROOT

__all__ = [
    "NO_NONESSENTIAL_TRAFFIC",
    "Append",
    "ClientSandbox",
    "DroppingStore",
    "ForwardingStore",
    "NewProcessOutcome",
    "RecordingStore",
    "conversation",
    "result_of",
    "run_in_new_process",
    "run_turn",
]

NO_NONESSENTIAL_TRAFFIC = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
"""Off switches for the CLI's own traffic. CLI 2.1.332 honours the first (without it, it calls
api.anthropic.com at start and exit); the other three are kept for older and newer CLIs."""

CHILD_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class ClientSandbox:
    """One run's private config directory and home, in a project directory runs may share."""

    root: Path
    cwd: Path
    api_env: dict[str, str]

    @classmethod
    def create(cls, root: Path, cwd: Path, api_env: dict[str, str]) -> ClientSandbox:
        """A sandbox in a new directory ``root`` for a client working in ``cwd``."""
        for directory in (root / "config", root / "home", cwd):
            directory.mkdir(parents=True, exist_ok=True)
        return cls(root, cwd, api_env)

    @property
    def config_dir(self) -> Path:
        """The client's ``CLAUDE_CONFIG_DIR`` (its local transcripts live under ``projects/``)."""
        return self.root / "config"

    @property
    def project_key(self) -> str:
        """The ``project_key`` the SDK files this client's sessions under."""
        return project_key_for_directory(str(self.cwd))

    @property
    def env(self) -> dict[str, str]:
        """The client's environment on top of the caller's: fake API, own config and home."""
        return {
            **self.api_env,
            **NO_NONESSENTIAL_TRAFFIC,
            "CLAUDE_CONFIG_DIR": str(self.config_dir),
            "HOME": str(self.root / "home"),
        }

    def options(self, store: SessionStore | None, **overrides: Any) -> ClaudeAgentOptions:
        """Options for one run in this sandbox, mirroring to ``store`` (``None``: local only)."""
        return ClaudeAgentOptions(
            **{"cwd": str(self.cwd), "env": self.env, "session_store": store, **overrides}
        )

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "cwd": str(self.cwd), "api_env": self.api_env}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientSandbox:
        return cls.create(Path(data["root"]), Path(data["cwd"]), dict(data["api_env"]))


# -- stores around the store under test --------------------------------------------------------


class ForwardingStore:
    """A ``SessionStore`` that hands every call to ``inner``; subclasses change ``append``."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.inner.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.inner.load(key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return await self.inner.list_sessions(project_key)

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        return await self.inner.list_session_summaries(project_key)

    async def delete(self, key: SessionKey) -> None:
        await self.inner.delete(key)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return await self.inner.list_subkeys(key)


Append = tuple[SessionKey, list[SessionStoreEntry]]
"""One ``append`` call as the SDK made it: the key and the batch."""


class RecordingStore(ForwardingStore):
    """Records each ``append`` the SDK makes (a deep copy, before the store sees it).

    ``appends`` seeds the record with earlier runs' appends, so a resumed session's ``sent``
    covers every turn.
    """

    def __init__(self, inner: SessionStore, appends: Iterable[Append] = ()) -> None:
        super().__init__(inner)
        self.appends: list[Append] = list(appends)

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        self.appends.append((copy.deepcopy(key), copy.deepcopy(entries)))
        await super().append(key, entries)

    def sent(self, key: SessionKey) -> list[SessionStoreEntry]:
        """What the SDK appended under ``key``, in order; a ``uuid`` seen before is skipped.

        That is the transcript the contract says ``load(key)`` returns.
        """
        seen: set[str] = set()
        transcript: list[SessionStoreEntry] = []
        for appended_key, entries in self.appends:
            if dict(appended_key) != dict(key):
                continue
            for entry in entries:
                uuid = entry.get("uuid")
                if isinstance(uuid, str):
                    if uuid in seen:
                        continue
                    seen.add(uuid)
                transcript.append(entry)
        return transcript

    def batches(self, key: SessionKey) -> list[list[SessionStoreEntry]]:
        """The batches appended under ``key``, in order."""
        return [entries for appended_key, entries in self.appends if appended_key == key]

    def appended_keys(self) -> list[SessionKey]:
        """Every key appended to, in first-append order."""
        keys: list[SessionKey] = []
        for key, _ in self.appends:
            if key not in keys:
                keys.append(key)
        return keys


class DroppingStore(ForwardingStore):
    """A deliberately broken store: it silently loses every entry of one ``type``."""

    def __init__(self, inner: SessionStore, dropped_type: str) -> None:
        super().__init__(inner)
        self.dropped_type = dropped_type

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await super().append(key, [e for e in entries if e.get("type") != self.dropped_type])


# -- running turns -----------------------------------------------------------------------------


async def run_turn(prompt: str, options: ClaudeAgentOptions) -> list[Message]:
    """Run one turn through ``claude_agent_sdk.query`` and return every message it yielded."""
    return [message async for message in query(prompt=prompt, options=options)]


def result_of(messages: list[Message]) -> ResultMessage:
    """The turn's ``ResultMessage``, which must say it succeeded, with no mirror error."""
    mirror_errors = [m for m in messages if isinstance(m, MirrorErrorMessage)]
    assert mirror_errors == [], f"the SDK could not mirror to the store: {mirror_errors!r}"
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert len(results) == 1, f"expected one result, got {messages!r}"
    assert not results[0].is_error, f"the turn failed: {results[0]!r}"
    return results[0]


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The text blocks of a Messages API request, as ``(role, text)`` in order."""
    said: list[tuple[str, str]] = []
    for message in request.get("messages", []):
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks or []:
            if block.get("type") == "text":
                said.append((message["role"], block["text"]))
    return said


@dataclass(frozen=True)
class NewProcessOutcome:
    """What a turn in a child process did: the SDK's appends there, and its result."""

    appends: list[Append]
    session_id: str
    result: str | None


async def run_in_new_process(
    sandbox: ClientSandbox, database: str, prompt: str, **overrides: Any
) -> NewProcessOutcome:
    """Run one turn in a new Python process on a ``MongoSessionStore`` in ``database``.

    ``overrides`` are ``ClaudeAgentOptions`` fields (JSON values: ``resume=...``,
    ``continue_conversation=True``, ...). The child reads ``MONGO_URL`` from the environment.
    """
    spec = {
        "sandbox": sandbox.to_json(),
        "database": database,
        "prompt": prompt,
        "overrides": overrides,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.real_client",
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(
        child.communicate(json.dumps(spec).encode()), CHILD_TIMEOUT_SECONDS
    )
    assert child.returncode == 0, f"child failed ({child.returncode}):\n{stderr.decode()}"
    outcome = json.loads(stdout)
    return NewProcessOutcome(
        appends=[(key, entries) for key, entries in outcome["appends"]],
        session_id=outcome["session_id"],
        result=outcome["result"],
    )


async def _child(spec: dict[str, Any]) -> dict[str, Any]:
    from session_store_mongo import MongoSessionStore

    sandbox = ClientSandbox.from_json(spec["sandbox"])
    async with MongoSessionStore(url=os.environ["MONGO_URL"], database=spec["database"]) as store:
        recorder = RecordingStore(store)
        messages = await run_turn(spec["prompt"], sandbox.options(recorder, **spec["overrides"]))
    result = result_of(messages)
    return {
        "appends": recorder.appends,
        "session_id": result.session_id,
        "result": result.result,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_child(json.load(sys.stdin)))))
