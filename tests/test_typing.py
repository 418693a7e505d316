"""Our stores type-check where the SDK wants its own ``SessionStore`` (mypy, strict)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

PROGRAM = """
from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import SessionStore
from session_store_mongo import MongoSessionStore
from session_store_protocol import InMemorySessionStore

memory: SessionStore = InMemorySessionStore()
mongo: SessionStore = MongoSessionStore(url="mongodb://localhost")
options = ClaudeAgentOptions(session_store=MongoSessionStore(url="mongodb://localhost"))
"""

BROKEN = """
from claude_agent_sdk.types import SessionStore

class NotAStore:
    async def append(self, key: str, entries: list[str]) -> None: ...

store: SessionStore = NotAStore()
"""


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    program = tmp_path / "program.py"
    program.write_text(source)
    stdout, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(program)]
    )
    return stdout, status


def test_stores_are_sdk_session_stores(tmp_path: Path) -> None:
    """Both stores assign to ``claude_agent_sdk.types.SessionStore`` without a cast."""
    stdout, status = _mypy(tmp_path, PROGRAM)
    assert status == 0, stdout


def test_the_check_can_fail(tmp_path: Path) -> None:
    """The same check rejects a class that is not a ``SessionStore`` (the test has teeth)."""
    stdout, status = _mypy(tmp_path, BROKEN)
    assert status == 1
    assert "incompatible type" in stdout or "Incompatible types" in stdout
