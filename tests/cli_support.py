r"""Helpers for the CLI's test modules: run it in process, on a terminal, or on a live database.

Usage::

    from tests.cli_support import LiveCli, invoke, on_terminal

    result = invoke("--url", url, "list")                  # CliRunner, in process
    done = on_terminal("--url", url, "delete", "s", answer="n\n")   # stdin is a pseudo-terminal
    cli = LiveCli(url); cli("import", path)                  # a database of its own
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import MongoClient
from typer.testing import CliRunner, Result

from session_store_mongo import MongoSessionStore
from session_store_mongo.cli.app import app
from tests.support import FIXTURES, unique_name

__all__ = [
    "FIXTURE_FILES",
    "LIBRARY_CALLS",
    "MAIN",
    "METADATA",
    "NO_SERVER_URL",
    "PROJECT",
    "PROJECTS",
    "PROJECT_DIR",
    "SECOND",
    "SUBAGENT_FILE",
    "SUBPATH",
    "LiveCli",
    "invoke",
    "on_terminal",
]

T = TypeVar("T")

PROJECTS = FIXTURES / "claude_projects"
PROJECT = "-home-dev-acme-webapp"
PROJECT_DIR = PROJECTS / PROJECT
MAIN = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
SECOND = "0b6a9a52-7f3d-4e2c-9a1b-5c4d3e2f1a0b"
SUBPATH = "subagents/agent-a1b2c3d"
SUBAGENT_FILE = PROJECT_DIR / MAIN / "subagents" / "agent-a1b2c3d.jsonl"
METADATA = PROJECT_DIR / MAIN / "subagents" / "agent-a1b2c3d.meta.json"
FIXTURE_FILES = sorted(p.relative_to(PROJECTS) for p in PROJECTS.rglob("*") if p.is_file())
LIBRARY_CALLS = re.compile(
    r"\b(append|append_new|connect|ensure_indexes|iter_entries|list_session_summaries|"
    r"list_sessions|list_subkeys|prune_inactive|rotate_keys|set_mtime)\b"
)
"""The store's calls an error line must not name: the operator ran a command, not these."""
NO_SERVER_URL = "mongodb://user:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=500"
"""A URL nothing answers at, quickly, with a password that must never be printed."""


def invoke(
    *args: str, env: dict[str, str | None] | None = None, stdin: str | None = None
) -> Result:
    """Run the CLI in-process with a wide terminal and no MONGO_URL from the environment."""
    environment: dict[str, str | None] = {"COLUMNS": "200", "MONGO_URL": None}
    environment.update(env or {})
    return CliRunner().invoke(app, list(args), env=environment, input=stdin)


def on_terminal(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a new process whose stdin is a terminal that has ``answer`` typed in."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "session_store_mongo.cli", *args],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**environment, "COLUMNS": "200"},
        )
        os.write(controller, answer.encode())
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


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

    def global_options(self) -> list[str]:
        """The options that point the CLI at this database (for ``on_terminal``)."""
        return ["--url", self.url, "--database", self.database, "--project", PROJECT]

    def store(
        self, operation: Callable[[MongoSessionStore], Awaitable[T]], database: str | None = None
    ) -> T:
        """Inspect the database (or another one) directly, not through the CLI."""

        async def run() -> T:
            async with MongoSessionStore(
                url=self.url, database=database or self.database, create_indexes=False
            ) as store:
                return await operation(store)

        return asyncio.run(run())

    def sizes(self) -> dict[str, int]:
        """Entries stored in the fixture's three transcripts."""

        async def count(store: MongoSessionStore) -> dict[str, int]:
            return {
                MAIN: await store.size({"project_key": PROJECT, "session_id": MAIN}),
                SUBPATH: await store.size(
                    {"project_key": PROJECT, "session_id": MAIN, "subpath": SUBPATH}
                ),
                SECOND: await store.size({"project_key": PROJECT, "session_id": SECOND}),
            }

        return self.store(count)

    def drop(self) -> None:
        """Drop every database this CLI used."""
        client: MongoClient[Any] = MongoClient(self.url)
        for database in self.databases:
            client.drop_database(database)
        client.close()
