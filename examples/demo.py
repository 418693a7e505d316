"""Watch a conversation written by one process, resumed by another, then inspected by the CLI.

Run it with ``make demo`` (starts a throw-away local SecantusDB unless ``MONGO_URL`` is set), or
by hand against any MongoDB::

    MONGO_URL=mongodb://localhost:27017 python examples/demo.py [--database NAME]

Every step prints what happens. The script re-runs itself as separate OS processes
(``--write SESSION_ID`` and ``--resume SESSION_ID``), each resolving the store from the same
wire config through plugin discovery, as separate harness processes would. The database is the
harness's own setting (``MONGO_DATABASE``, like ``MONGO_URL``): a wire config cannot choose one
unless the server allows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from pymongo import AsyncMongoClient

from session_store_mongo.client import hosts_in_url
from session_store_protocol import (
    SessionKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreError,
    StoreRegistry,
)

DEFAULT_DATABASE = "session_store_demo"
PROJECT_CWD = "/home/you/acme-webapp"
PROJECT_KEY = "-home-you-acme-webapp"
"""Claude Code names a project by its working directory with every non-alphanumeric as ``-``."""
AGENT_ID = "a7c41e9"


class Transcript:
    """Builds Claude Code-shaped entries, each chained to the previous one by ``parentUuid``."""

    def __init__(self, session_id: str, *, sidechain: bool = False) -> None:
        self.session_id = session_id
        self.sidechain = sidechain
        self.parent: str | None = None

    def entry(self, kind: str, message: dict[str, Any]) -> SessionStoreEntry:
        """Return the next entry of type ``kind`` (``user`` or ``assistant``)."""
        entry_uuid = str(uuid.uuid4())
        entry: dict[str, Any] = {
            "type": kind,
            "uuid": entry_uuid,
            "parentUuid": self.parent,
            "sessionId": self.session_id,
            "isSidechain": self.sidechain,
            "cwd": PROJECT_CWD,
            "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "message": message,
        }
        if self.sidechain:
            entry["agentId"] = AGENT_ID
        self.parent = entry_uuid
        return cast(SessionStoreEntry, entry)

    def user(self, content: str | list[dict[str, Any]]) -> SessionStoreEntry:
        """Return the next user entry: a prompt, or tool results."""
        return self.entry("user", {"role": "user", "content": content})

    def assistant(self, *blocks: dict[str, Any]) -> SessionStoreEntry:
        """Return the next assistant entry made of content blocks."""
        return self.entry("assistant", {"role": "assistant", "content": list(blocks)})


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def tool_result(tool_id: str, content: str) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": tool_id, "content": content}]


def conversation(session_id: str) -> tuple[list[SessionStoreEntry], list[SessionStoreEntry]]:
    """Return a main transcript and its subagent's transcript, as Claude Code writes them."""
    main = Transcript(session_id)
    main_entries = [
        main.user("Why does `npm test` fail on CI but pass on my laptop?"),
        main.assistant(
            text("Let me look at the CI workflow."),
            tool_use("toolu_01", "Read", file_path=f"{PROJECT_CWD}/.github/workflows/ci.yml"),
        ),
        main.user(tool_result("toolu_01", "runs-on: ubuntu-latest\nnode-version: 18\n...")),
        main.assistant(
            text("CI pins Node 18; I'll have a subagent check which code needs Node 20."),
            tool_use("toolu_02", "Task", description="Find Node 20 APIs", prompt="Find Node 20"),
        ),
        main.user(tool_result("toolu_02", "src/date.ts:14 uses Array.prototype.toSorted")),
        main.assistant(
            text("`toSorted` needs Node 20 but CI runs Node 18. Bump `node-version` to 20.")
        ),
    ]
    title = cast(
        SessionStoreEntry,
        {"type": "custom-title", "customTitle": "CI fails on Node 18", "sessionId": session_id},
    )
    subagent = Transcript(session_id, sidechain=True)
    subagent_entries = [
        subagent.user("Find code that needs Node 20"),
        subagent.assistant(tool_use("toolu_s1", "Grep", pattern="toSorted|findLast", path="src")),
        subagent.user(tool_result("toolu_s1", "src/date.ts:14")),
        subagent.assistant(text("src/date.ts:14 uses Array.prototype.toSorted")),
    ]
    return [*main_entries, title], subagent_entries


def resolve_store() -> SessionStore:
    """Resolve the store the way a harness does: from a wire config, through discovery."""
    return StoreRegistry().build({"kind": "mongo"})


def main_key(session_id: str) -> SessionKey:
    return {"project_key": PROJECT_KEY, "session_id": session_id}


async def write_conversation(session_id: str) -> None:
    """Process A: write the conversation as the SDK mirrors it, batch by batch."""
    store = resolve_store()
    main_entries, subagent_entries = conversation(session_id)
    key = main_key(session_id)
    print(f"  [writer pid {os.getpid()}] session {session_id}, project {PROJECT_KEY}")
    # The SDK mirrors a transcript in batches as the turn progresses; so does this writer.
    await store.append(key, main_entries[:1])
    await store.append(key, main_entries[1:])
    print(
        f"  [writer pid {os.getpid()}] main transcript: {len(main_entries)} entries "
        "(prompt, tool_use, tool_result, subagent call, answer, custom-title)"
    )
    subpath = f"subagents/agent-{AGENT_ID}"
    await store.append({**key, "subpath": subpath}, subagent_entries)
    print(f"  [writer pid {os.getpid()}] {subpath}: {len(subagent_entries)} entries")


def describe(entry: SessionStoreEntry) -> str:
    """One readable line for a transcript entry."""
    raw: dict[str, Any] = dict(entry)
    if raw["type"] == "custom-title":
        return f"(title) {raw['customTitle']}"
    message = raw.get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return f"{raw['type']}: {content}"
    parts = []
    for block in content or []:
        if block["type"] == "text":
            parts.append(block["text"])
        elif block["type"] == "tool_use":
            parts.append(f"-> {block['name']}({json.dumps(block['input'])})")
        elif block["type"] == "tool_result":
            first_line = str(block["content"]).splitlines()[0]
            parts.append(f"<- result of {block['tool_use_id']}: {first_line}")
    return f"{raw['type']}: " + "  ".join(parts)


async def resume_conversation(session_id: str) -> None:
    """Process B: find the session by id and print it, subagent transcripts included."""
    store = resolve_store()
    key = main_key(session_id)
    entries = await store.load(key)
    if entries is None:
        raise SystemExit(f"  [reader pid {os.getpid()}] session {session_id} not found")
    print(f"  [reader pid {os.getpid()}] loaded {len(entries)} entries of {session_id}:")
    for number, entry in enumerate(entries, 1):
        print(f"    {number}. {describe(entry)}")
    for subpath in await store.list_subkeys(key):
        sub_entries = await store.load({**key, "subpath": subpath}) or []
        print(f"  [reader pid {os.getpid()}] {subpath}: {len(sub_entries)} entries:")
        for number, entry in enumerate(sub_entries, 1):
            print(f"    {number}. {describe(entry)}")


def run_step(command: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Run a child process with our environment (or ``env``); raise if it fails."""
    sys.stdout.flush()
    completed = subprocess.run(command, check=False, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {completed.returncode}")


def run_cli(database: str, *args: str) -> None:
    """Run ``session-store-mongo ARGS`` (the operator CLI) against the demo database."""
    cli_args = ["--database", database, "--project", PROJECT_KEY, *args]
    print(f"  $ session-store-mongo {' '.join(cli_args)}")
    env = dict(os.environ)
    if not sys.stdout.isatty():
        # Rich falls back to 80 columns when piped; the session table needs more.
        env.setdefault("COLUMNS", "140")
    run_step([sys.executable, "-m", "session_store_mongo.cli", *cli_args], env)


async def collections_of(url: str, database: str) -> list[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        return sorted(await client[database].list_collection_names())
    finally:
        await client.close()


def discover(database: str) -> None:
    """Step 1: show what discovery finds and which plugin provides kind ``mongo``."""
    registry = StoreRegistry()
    print(f"  discovered store kinds: {', '.join(registry.kinds())}")
    plugin = registry.plugin_for("mongo")
    print(
        f"  kind 'mongo' is provided by plugin {plugin.name!r} from distribution "
        f"{plugin.distribution} {plugin.version} (it reads MONGO_URL and MONGO_DATABASE)"
    )
    store = registry.build({"kind": "mongo"})
    print(f"  built {type(store).__name__} for database {database!r} (MONGO_DATABASE)")


def demo(url: str, database: str) -> None:
    session_id = str(uuid.uuid4())
    script = str(Path(__file__).resolve())
    print(f"session-store-mongo demo: MongoDB at {hosts_in_url(url)}, database {database}\n")

    print('Step 1. A harness resolves the wire config {"kind": "mongo"} through plugin discovery')
    discover(database)

    print(f"\nStep 2. One process writes a conversation (session {session_id})")
    run_step([sys.executable, script, "--write", session_id, "--database", database])

    print("\nStep 3. Another process resumes it by session id and reads it back")
    run_step([sys.executable, script, "--resume", session_id, "--database", database])

    print("\nStep 4. The operator CLI lists the project's sessions and shows this one")
    run_cli(database, "list")
    run_cli(database, "show", session_id)

    collections = asyncio.run(collections_of(url, database))
    print(
        f"\nDone. The data lives on {hosts_in_url(url)}, database {database!r}, "
        f"collections {', '.join(collections)}."
    )
    if os.environ.get("SECANTUS_STARTED") == url:
        print(
            "(`make demo` without MONGO_URL ran a throw-away in-memory SecantusDB; it stops now.)"
            "\nTo keep the data in your own MongoDB: "
            "MONGO_URL='mongodb+srv://USER:PASSWORD@HOST' make demo"
        )
    else:
        print(f"(The data stays there; drop database {database!r} to remove it.)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="demo database name")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--write", metavar="SESSION_ID", help="(child) write the conversation")
    role.add_argument("--resume", metavar="SESSION_ID", help="(child) read the session back")
    args = parser.parse_args(argv)
    url = os.environ.get("MONGO_URL")
    os.environ["MONGO_DATABASE"] = args.database  # server-side, inherited by the child processes
    if not url:
        print("MONGO_URL is not set: run `make demo` (it starts a local server)", file=sys.stderr)
        return 2
    try:
        if args.write:
            asyncio.run(write_conversation(args.write))
        elif args.resume:
            asyncio.run(resume_conversation(args.resume))
        else:
            demo(url, args.database)
    except (SessionStoreError, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
