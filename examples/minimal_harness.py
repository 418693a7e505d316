"""A minimal harness: wire config in, Mongo store out, Claude Code transcripts imported and read.

Run it against any MongoDB (``claude-agent-sdk`` must be installed: ``pip install
'session-store-mongo[summaries]'``)::

    MONGO_URL=mongodb://localhost:27017 python examples/minimal_harness.py [--database agents_x]

The harness keeps the URL server-side and lets the client choose only a database starting with
``agents_``. It builds ``ClaudeAgentOptions(session_store=store, resume=...)`` (a model call
would start from there), then does for real what needs no model: it imports an on-disk Claude
Code transcript (this repo's fixture, copied into a temporary ``CLAUDE_CONFIG_DIR``) into the
store and reads it back through the SDK's store helpers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    ClaudeAgentOptions,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    import_session_to_store,
    list_sessions_from_store,
    list_subagents_from_store,
)

from session_store_mongo import mongo_session_store_builder
from session_store_protocol import SessionStoreError, StoreRegistry

FIXTURE_PROJECTS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "claude_projects"
PROJECT_CWD = "/home/dev/acme-webapp"
"""The working directory the fixture sessions ran in; the SDK derives the project key from it."""
SESSION_ID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
ALLOWED_DATABASE_PREFIX = "agents_"


def summarize(message: Any) -> str:
    """One line for a message payload: its text, or the tools it calls or answers."""
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_use":
            parts.append(f"[tool_use {block['name']}]")
        elif block.get("type") == "tool_result":
            parts.append(f"[tool_result {block['tool_use_id']}]")
    return " ".join(parts)


async def run(wire_config: dict[str, Any]) -> None:
    # Server side: the URL and the allow-list never come from the wire.
    builder = mongo_session_store_builder(
        {"url": os.environ["MONGO_URL"], "allowed_database_prefix": ALLOWED_DATABASE_PREFIX}
    )
    registry = StoreRegistry()
    registry.register("mongo", builder, replace=True)
    try:
        store = registry.build(wire_config)
        print(f"wire config {wire_config} -> {type(store).__name__}")

        options = ClaudeAgentOptions(session_store=store, cwd=PROJECT_CWD, resume=SESSION_ID)
        print(f"ClaudeAgentOptions ready: resume={options.resume}, cwd={options.cwd}")

        await import_session_to_store(SESSION_ID, store)
        print(f"imported session {SESSION_ID} from CLAUDE_CONFIG_DIR")

        for info in await list_sessions_from_store(store, directory=PROJECT_CWD):
            print(f"session {info.session_id}: title={info.custom_title!r}")
            print(f"  first prompt: {info.first_prompt}")
        messages = await get_session_messages_from_store(store, SESSION_ID, directory=PROJECT_CWD)
        print(f"{len(messages)} messages:")
        for message in messages:
            print(f"  {message.type}: {summarize(message.message)[:90]}")
        for agent_id in await list_subagents_from_store(store, SESSION_ID, directory=PROJECT_CWD):
            sub = await get_subagent_messages_from_store(
                store, SESSION_ID, agent_id, directory=PROJECT_CWD
            )
            print(f"subagent {agent_id}: {len(sub)} messages")
    finally:
        await builder.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=f"{ALLOWED_DATABASE_PREFIX}harness_example")
    args = parser.parse_args(argv)
    wire_config = {"kind": "mongo", "options": {"database": args.database}}
    with tempfile.TemporaryDirectory() as config_dir:
        # Claude Code keeps transcripts under $CLAUDE_CONFIG_DIR/projects/<project>/.
        shutil.copytree(FIXTURE_PROJECTS, Path(config_dir) / "projects")
        os.environ["CLAUDE_CONFIG_DIR"] = config_dir
        try:
            asyncio.run(run(wire_config))
        except SessionStoreError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
