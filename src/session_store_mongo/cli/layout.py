"""Claude Code's on-disk transcript layout, read and written for the operator CLI.

Usage::

    from session_store_mongo.cli.layout import find_transcripts, read_entries, transcript_path

    for transcript in find_transcripts(Path("~/.claude/projects").expanduser(), loose_project="p"):
        for line in read_entries(transcript.path):
            ...                                   # line.entry, or line.error with line.number

    transcript_path(Path("out"), {"project_key": "p", "session_id": "s"})   # out/p/s.jsonl

The layout is ``<projects>/<project>/<session>.jsonl`` for a main transcript and
``<projects>/<project>/<session>/subagents/agent-<id>.jsonl`` for a subagent, the mapping the
SDK's ``file_path_to_session_key`` applies. Nothing here imports Typer, Rich or the SDK.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from session_store_protocol.types import SessionKey, SessionStoreEntry

__all__ = [
    "LayoutError",
    "Line",
    "Transcript",
    "compute_project_key",
    "find_transcripts",
    "project_key_for_directory",
    "read_entries",
    "transcript_path",
    "write_entries",
]

_TRANSCRIPT_SUFFIX = ".jsonl"
_SUBAGENTS_DIR = "subagents"
_NON_ALPHANUMERIC = re.compile(r"[^a-zA-Z0-9]")
_MAX_SANITIZED_LENGTH = 200
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class LayoutError(ValueError):
    """A path is not a transcript, a project directory or a projects root."""


# -- project keys ------------------------------------------------------------------------------


def _djb2_base36(text: str) -> str:
    """The CLI's 32-bit djb2 variant (``h * 31 + c`` as a signed int), absolute value in base 36."""
    value = 0
    for char in text:
        value = ((value << 5) - value + ord(char)) & 0xFFFFFFFF
    if value >= 0x80000000:
        value -= 0x100000000
    value = abs(value)
    digits = ""
    while value:
        value, digit = divmod(value, 36)
        digits = _BASE36[digit] + digits
    return digits or "0"


def compute_project_key(directory: str | os.PathLike[str]) -> str:
    """Derive a project key as the SDK documents it, without importing the SDK.

    The directory is resolved (realpath) and NFC-normalised; every character that is not an ASCII
    letter or digit becomes ``-``; a result longer than 200 characters is cut to 200 and
    suffixed with ``-`` and the djb2 hash (base 36) of the whole resolved path.
    """
    resolved = unicodedata.normalize("NFC", os.path.realpath(os.fspath(directory)))
    sanitized = _NON_ALPHANUMERIC.sub("-", resolved)
    if len(sanitized) <= _MAX_SANITIZED_LENGTH:
        return sanitized
    return f"{sanitized[:_MAX_SANITIZED_LENGTH]}-{_djb2_base36(resolved)}"


def project_key_for_directory(directory: str | os.PathLike[str] | None = None) -> str:
    """Return the project key of ``directory`` (default: the current one), as the SDK computes it.

    Uses ``claude_agent_sdk.project_key_for_directory`` when the SDK is installed, so keys match
    whatever version of the algorithm the SDK ships; falls back to ``compute_project_key``.
    """
    target = os.getcwd() if directory is None else os.fspath(directory)
    try:
        from claude_agent_sdk import project_key_for_directory as sdk_project_key
    except ImportError:
        return compute_project_key(target)
    return sdk_project_key(target)


# -- finding transcripts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    """One JSONL file and the store key its entries go to."""

    path: Path
    key: SessionKey


def _is_transcript(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_TRANSCRIPT_SUFFIX)


def _stem(path: Path) -> str:
    return path.name[: -len(_TRANSCRIPT_SUFFIX)]


def _project_transcripts(project_dir: Path) -> Iterator[Transcript]:
    """A project's main transcripts, each followed by its subagent transcripts, sorted."""
    project_key = project_dir.name
    for main in sorted(p for p in project_dir.iterdir() if _is_transcript(p)):
        session_id = _stem(main)
        yield Transcript(main, {"project_key": project_key, "session_id": session_id})
        session_dir = project_dir / session_id
        for sub in sorted(
            p for p in (session_dir / _SUBAGENTS_DIR).rglob("*") if _is_transcript(p)
        ):
            parts = [*sub.relative_to(session_dir).parts[:-1], _stem(sub)]
            yield Transcript(
                sub,
                {"project_key": project_key, "session_id": session_id, "subpath": "/".join(parts)},
            )


def _holds_transcripts(directory: Path) -> bool:
    return any(_is_transcript(p) for p in directory.iterdir())


def find_transcripts(path: Path, *, loose_project: str) -> list[Transcript]:
    """List the transcripts under ``path`` with their store keys.

    Args:
        path: A ``.jsonl`` file, a project directory (``<session>.jsonl`` files and their
            ``<session>/subagents/`` trees) or a projects root holding project directories.
        loose_project: The project key for a single ``.jsonl`` file given on its own.

    Raises:
        LayoutError: ``path`` is none of these, or holds no transcript.
    """
    if path.is_file():
        if not path.name.endswith(_TRANSCRIPT_SUFFIX):
            raise LayoutError(f"{path}: not a .jsonl transcript")
        return [Transcript(path, {"project_key": loose_project, "session_id": _stem(path)})]
    if not path.is_dir():
        raise LayoutError(f"{path}: no such file or directory")
    if _holds_transcripts(path):
        return list(_project_transcripts(path))
    found = [
        transcript
        for project_dir in sorted(p for p in path.iterdir() if p.is_dir())
        if _holds_transcripts(project_dir)
        for transcript in _project_transcripts(project_dir)
    ]
    if not found:
        raise LayoutError(f"{path}: no <session>.jsonl transcripts here or one level below")
    return found


# -- reading and writing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One non-blank line of a transcript: an entry, or why it is not one."""

    number: int
    size: int
    """Bytes the line took in the file, newline included (for progress)."""
    entry: SessionStoreEntry | None = None
    error: str | None = None


def _problem(value: Any) -> str | None:
    """Why a parsed line cannot be stored, or ``None`` (the store's own validation rules)."""
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    if not isinstance(value.get("type"), str):
        return "no string 'type' field"
    if value.get("uuid") is not None and not isinstance(value["uuid"], str):
        return "'uuid' is not a string"
    return None


def read_entries(path: Path) -> Iterator[Line]:
    """Yield the entries of a JSONL transcript, or an error per malformed line; skip blanks."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                yield Line(number, len(raw), error=f"bad JSON: {exc}")
                continue
            problem = _problem(value)
            yield Line(number, len(raw), entry=value if problem is None else None, error=problem)


def _safe_segment(value: str, field: str) -> str:
    if value in ("", ".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise LayoutError(f"{field} {value!r} cannot be used as a file name")
    return value


def transcript_path(root: Path, key: SessionKey) -> Path:
    """Where Claude Code keeps the transcript ``key`` under the projects directory ``root``.

    Raises:
        LayoutError: A key field would escape ``root`` (a ``/`` or ``..`` in it).
    """
    project_dir = root / _safe_segment(key["project_key"], "project key")
    session_id = _safe_segment(key["session_id"], "session id")
    subpath = key.get("subpath")
    if subpath is None:
        return project_dir / f"{session_id}{_TRANSCRIPT_SUFFIX}"
    parts = [_safe_segment(part, "subpath segment") for part in subpath.split("/")]
    return project_dir.joinpath(session_id, *parts[:-1], f"{parts[-1]}{_TRANSCRIPT_SUFFIX}")


def write_entries(path: Path, entries: list[SessionStoreEntry]) -> None:
    """Write entries as JSONL, one ``json.dumps(entry, ensure_ascii=False)`` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as stream:
        for entry in entries:
            stream.write(json.dumps(entry, ensure_ascii=False))
            stream.write("\n")
