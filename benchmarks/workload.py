"""Deterministic, realistic transcript entries for the benchmarks.

Usage::

    from benchmarks.workload import transcript, write_claude_projects

    entries = transcript("prefill-10000", 10_000)            # same seed, same entries, every run
    big = transcript("past-limit", 100, size=(4096, 4096))   # entries of 4 KB each
    write_claude_projects(tmp, files=20, entries_per_file=500)  # <tmp>/<project>/<session>.jsonl

Entries alternate between an assistant message (text plus a ``tool_use``) and the user's
``tool_result``, shaped like Claude Code's, each padded with prose to a JSON size drawn from
``size``. The default 1,000-1,800 bytes is what assistant messages and tool results weigh, and
keeps 10,000 of them (plus the appends the benchmark adds) under the 16 MB document limit, so the
seed design can hold a session of that length.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any, cast

from session_store_protocol.types import SessionStoreEntry

__all__ = ["PROJECT", "transcript", "write_claude_projects"]

PROJECT = "-home-bench-project"
_CWD = "/home/bench/project"
_TOOLS = ("Read", "Edit", "Grep", "Bash", "Glob", "Write")
_WORDS = (
    "the", "request", "handler", "returns", "a", "session", "store", "entry", "after", "index",
    "lookup", "so", "every", "append", "stays", "flat", "while", "transcript", "grows", "and",
    "client", "retries", "failed", "batch", "without", "loss", "async", "await", "cursor",
    "insert", "update", "document", "field", "value", "config", "test", "file", "line", "error",
)  # fmt: skip


def _prose(rng: random.Random, length: int) -> str:
    words = rng.choices(_WORDS, k=length // 4 + 8)
    return " ".join(words)[: max(length, 0)]


def _entry(
    rng: random.Random, n: int, parent: str | None, session_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Entry ``n`` of a transcript, and its content block whose empty prose the caller fills."""
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    envelope = {
        "parentUuid": parent,
        "isSidechain": False,
        "userType": "external",
        "cwd": _CWD,
        "sessionId": session_id,
        "version": "2.1.3",
        "gitBranch": "main",
        "uuid": uid,
        "timestamp": f"2026-11-20T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
    }
    if n % 2 == 0:
        text = {"type": "text", "text": ""}
        tool = rng.choice(_TOOLS)
        assistant = {
            **envelope,
            "type": "assistant",
            "requestId": f"req_{n:06d}",
            "message": {
                "id": f"msg_{n:06d}",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [
                    text,
                    {
                        "type": "tool_use",
                        "id": f"toolu_{n:06d}",
                        "name": tool,
                        "input": {"file_path": f"{_CWD}/src/module_{n % 97}.py"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 1000 + n, "output_tokens": 20 + n % 400},
            },
        }
        return assistant, text
    result = {"type": "tool_result", "tool_use_id": f"toolu_{n - 1:06d}", "content": ""}
    user = {**envelope, "type": "user", "message": {"role": "user", "content": [result]}}
    return user, result


def transcript(
    seed: str,
    count: int,
    *,
    size: tuple[int, int] = (1000, 1800),
    session_id: str = "bench-session",
) -> list[SessionStoreEntry]:
    """Return ``count`` entries, the same ones for the same arguments.

    Args:
        seed: Names the transcript; different seeds give different uuids.
        count: How many entries.
        size: Smallest and largest JSON size of an entry, in bytes.
        session_id: The ``sessionId`` field the entries carry.
    """
    rng = random.Random(seed)
    entries: list[SessionStoreEntry] = []
    parent: str | None = None
    for n in range(count):
        entry, block = _entry(rng, n, parent, session_id)
        envelope_bytes = len(json.dumps(entry, ensure_ascii=False).encode())
        block["text" if block["type"] == "text" else "content"] = _prose(
            rng, rng.randint(*size) - envelope_bytes
        )
        entries.append(cast(SessionStoreEntry, entry))
        parent = entry["uuid"]
    return entries


def write_claude_projects(root: Path, *, files: int, entries_per_file: int) -> int:
    """Write ``files`` main transcripts in Claude Code's layout; return the entry count.

    The files land in ``<root>/<PROJECT>/<session>.jsonl``, as under ``~/.claude/projects``.
    """
    project = root / PROJECT
    project.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        session_id = str(
            uuid.UUID(int=random.Random(f"import-{index}").getrandbits(128), version=4)
        )
        entries = transcript(f"import-{index}", entries_per_file, session_id=session_id)
        lines = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries)
        (project / f"{session_id}.jsonl").write_text(lines, encoding="utf-8")
    return files * entries_per_file
