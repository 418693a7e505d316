"""Claude Code's on-disk transcript layout, read and written for the operator CLI.

Usage::

    from session_store_mongo.cli.layout import ExportStaging, find_transcripts, read_entries

    for transcript in find_transcripts(Path("~/.claude/projects").expanduser()):
        for line in read_entries(transcript.path):
            ...                                   # line.entry, or line.error with line.number

    with ExportStaging(Path("out")) as staging:    # out/<project>/<session>.jsonl ...
        await staging.transcript(key, entries)     # streamed from an async iterable
        files = list(staging.commit())

The layout is ``<projects>/<project>/<session>.jsonl`` for a main transcript and
``<projects>/<project>/<session>/subagents/agent-<id>.jsonl`` for a subagent, with its metadata
in ``agent-<id>.meta.json`` beside it: the mapping the SDK's ``file_path_to_session_key`` and
``import_session_to_store`` apply, keys taken from where a file sits. Lines are written as
Claude Code writes them, so an exported file equals the imported one byte for byte. Nothing here
imports Typer, Rich or the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from session_store_protocol.jsonl import json_line_utf8
from session_store_protocol.types import SessionKey, SessionStoreEntry

__all__ = [
    "METADATA_TYPE",
    "ExportFile",
    "ExportStaging",
    "LayoutError",
    "Line",
    "Transcript",
    "compute_project_key",
    "find_transcripts",
    "project_key_for_directory",
    "read_entries",
    "read_metadata",
    "transcript_at",
    "transcript_path",
]

_TRANSCRIPT_SUFFIX = ".jsonl"
_SUBAGENTS_DIR = "subagents"
_METADATA_SUFFIX = ".meta.json"
METADATA_TYPE = "agent_metadata"
"""The entry type the SDK gives a subagent's metadata sidecar in the store."""
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
    """One JSONL file, the store key its entries go to, and its subagent metadata sidecar."""

    path: Path
    key: SessionKey
    metadata: Path | None = None
    """``agent-<id>.meta.json`` beside a subagent transcript, when there is one."""


def _is_transcript(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_TRANSCRIPT_SUFFIX)


def _stem(path: Path) -> str:
    return path.name[: -len(_TRANSCRIPT_SUFFIX)]


def _sidecar(path: Path) -> Path:
    """``agent-x.jsonl`` -> ``agent-x.meta.json``, the name Claude Code gives the sidecar."""
    return path.with_name(_stem(path) + _METADATA_SUFFIX)


def transcript_at(path: Path, *, project: str | None = None) -> Transcript:
    """The store key of one transcript file, from where it sits, as the SDK derives it.

    ``<project>/<session>.jsonl`` is the main transcript of ``<session>`` in ``<project>``;
    ``<project>/<session>/subagents/.../agent-x.jsonl`` is the subagent transcript with
    subpath ``subagents/.../agent-x`` (the SDK's ``file_path_to_session_key``).

    Args:
        path: A ``.jsonl`` file.
        project: The project key to use instead of the directory's name.

    Raises:
        LayoutError: The path leaves no name to take a project key or session id from.
    """
    path = Path(os.path.abspath(path))
    parents = path.parts[:-1]
    if _SUBAGENTS_DIR in parents:
        at = len(parents) - 1 - parents[::-1].index(_SUBAGENTS_DIR)
        session_dir = Path(*path.parts[:at])
        subpath = "/".join((*path.parts[at:-1], _stem(path)))
        key: SessionKey = {
            "project_key": session_dir.parent.name if project is None else project,
            "session_id": session_dir.name,
            "subpath": subpath,
        }
        sidecar = _sidecar(path)
        transcript = Transcript(path, key, sidecar if sidecar.is_file() else None)
    else:
        key = {
            "project_key": path.parent.name if project is None else project,
            "session_id": _stem(path),
        }
        transcript = Transcript(path, key)
    if not transcript.key["project_key"] or not transcript.key["session_id"]:
        raise LayoutError(f"{path}: no directory name to take the project key from; pass --project")
    return transcript


def _transcripts_under(directory: Path, *, project: str | None) -> list[Transcript]:
    return [
        transcript_at(p, project=project) for p in sorted(directory.rglob("*")) if _is_transcript(p)
    ]


def _project_transcripts(project_dir: Path, *, project: str | None) -> list[Transcript]:
    """A project's transcripts: each session's main one, then its subagents', sorted."""
    found: list[Transcript] = []
    sessions = {_stem(p) for p in project_dir.iterdir() if _is_transcript(p)}
    sessions |= {p.name for p in project_dir.iterdir() if (p / _SUBAGENTS_DIR).is_dir()}
    for session_id in sorted(sessions):
        main = project_dir / f"{session_id}{_TRANSCRIPT_SUFFIX}"
        if _is_transcript(main):
            found.append(transcript_at(main, project=project))
        found.extend(_transcripts_under(project_dir / session_id / _SUBAGENTS_DIR, project=project))
    return found


def _holds_transcripts(directory: Path) -> bool:
    return any(_is_transcript(p) for p in directory.iterdir())


def find_transcripts(path: Path, *, project: str | None = None) -> list[Transcript]:
    """List the transcripts at or under ``path`` with their store keys, as the SDK derives them.

    Args:
        path: A ``.jsonl`` file; a subagents directory or a session directory (its subagent
            transcripts); a project directory (``<session>.jsonl`` files and their
            ``<session>/subagents/`` trees); or a projects root holding project directories.
        project: The project key for everything found, instead of the directories' names.

    Raises:
        LayoutError: ``path`` is none of these, holds no transcript, or ``project`` is given
            for a projects root holding several projects.
    """
    path = Path(os.path.abspath(path))
    if path.is_file():
        if not path.name.endswith(_TRANSCRIPT_SUFFIX):
            raise LayoutError(f"{path}: not a .jsonl transcript")
        return [transcript_at(path, project=project)]
    if not path.is_dir():
        raise LayoutError(f"{path}: no such file or directory")
    if _SUBAGENTS_DIR in path.parts:
        found = _transcripts_under(path, project=project)
    elif (path / _SUBAGENTS_DIR).is_dir() and not _holds_transcripts(path):
        found = _transcripts_under(path / _SUBAGENTS_DIR, project=project)
    elif _holds_transcripts(path):
        found = _project_transcripts(path, project=project)
    else:
        project_dirs = [p for p in sorted(path.iterdir()) if p.is_dir() and _holds_transcripts(p)]
        if project is not None and len(project_dirs) > 1:
            raise LayoutError(
                f"{path}: holds {len(project_dirs)} projects; --project names one project"
            )
        found = [t for d in project_dirs for t in _project_transcripts(d, project=project)]
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


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (the user wrote JSON, not Python)."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _problem(value: Any) -> str | None:
    """Why a parsed line cannot be stored, or ``None`` (the store's own validation rules)."""
    if not isinstance(value, dict):
        return f"not a JSON object ({_json_kind(value)})"
    if not isinstance(value.get("type"), str):
        return "no string 'type' field"
    if value.get("uuid") is not None and not isinstance(value["uuid"], str):
        return "'uuid' is not a string"
    return None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _parse(text: bytes) -> tuple[Any, str | None]:
    """A JSON value, strictly (no ``NaN`` or ``Infinity``), or why the text is not one."""
    try:
        return json.loads(text, parse_constant=_not_json), None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the constants
        return None, f"bad JSON: {exc}"
    except RecursionError:
        return None, "bad JSON: nested too deeply"


def read_entries(path: Path) -> Iterator[Line]:
    """Yield the entries of a JSONL transcript, or an error per malformed line; skip blanks."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if not text:
                continue
            value, problem = _parse(text)
            problem = problem or _problem(value)
            yield Line(number, len(raw), entry=value if problem is None else None, error=problem)


def read_metadata(path: Path) -> SessionStoreEntry:
    """A subagent's ``.meta.json`` sidecar as the entry the SDK's import stores for it.

    The SDK (``import_session_to_store``) appends ``{**sidecar, "type": "agent_metadata"}``
    after the transcript's lines; resuming writes it back as the sidecar.

    Raises:
        LayoutError: The sidecar is not a JSON object.
        OSError: It cannot be read.
    """
    value, problem = _parse(path.read_bytes())
    if problem is not None or not isinstance(value, dict):
        raise LayoutError(f"{path}: {problem or 'not a JSON object'}")
    # The type goes last, so a "type" key in the sidecar cannot shadow it (as in the SDK).
    return cast(SessionStoreEntry, {**value, "type": METADATA_TYPE})


# -- exporting ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ExportFile:
    """A file an export put in place: transcript lines, or a subagent's metadata sidecar."""

    path: Path
    entries: int
    """How many stored entries the file holds."""


class ExportStaging:
    """An export's files, streamed aside beside their destinations, then put in place together.

    Usage::

        with ExportStaging(Path("out")) as staging:
            await staging.transcript(key, entries)    # any async iterable: streamed to disk
            if staging.existing() and not force:
                ...                                    # refuse; leaving the block cleans up
            for file in staging.commit():              # renamed into place, mode 0600
                print(file.path, file.entries)

    Lines go to a temporary file in the destination's directory as the entries arrive, so an
    export of any length holds one entry in memory at a time, and a file is replaced whole or
    not at all. A subagent's ``agent_metadata`` entries (the last one wins, as on the SDK's
    resume) become its ``.meta.json`` sidecar without the ``type`` field. Leaving the block
    removes every temporary file not committed and the directories made for them; nothing is
    created for a transcript that has no entries.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._staged: list[tuple[Path, Path, int]] = []
        """``(temporary, destination, entries)`` of each file written and not yet in place."""
        self._created: list[Path] = []
        """Directories made for staged files, removed again if they stay empty."""

    def __enter__(self) -> ExportStaging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for temporary, _, _ in self._staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        self._staged.clear()
        for directory in sorted(self._created, key=lambda path: len(path.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: something was put in place there
                directory.rmdir()

    def _open(self, destination: Path) -> BinaryIO:
        parents = [destination.parent, *destination.parent.parents]
        self._created.extend(directory for directory in parents if not directory.exists())
        destination.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{destination.name}.", dir=destination.parent
        )
        self._staged.append((Path(temporary), destination, 0))
        return os.fdopen(descriptor, "wb")

    def _count(self, entries: int) -> None:
        temporary, destination, _ = self._staged[-1]
        self._staged[-1] = (temporary, destination, entries)

    async def transcript(self, key: SessionKey, entries: AsyncIterable[SessionStoreEntry]) -> None:
        """Write the transcript ``key`` under the root as Claude Code keeps it.

        Raises:
            LayoutError: A key field would escape the root.
            OSError: A file cannot be written.
        """
        path = transcript_path(self._root, key)
        is_subagent = "subpath" in key
        metadata: SessionStoreEntry | None = None
        stream: BinaryIO | None = None
        lines = 0
        try:
            async for entry in entries:
                if is_subagent and entry.get("type") == METADATA_TYPE:
                    metadata = entry
                    continue
                if stream is None:
                    stream = self._open(path)
                stream.write(json_line_utf8(entry))  # no line + "\n": a copy of a huge entry
                stream.write(b"\n")
                lines += 1
                # Where Ctrl-C lands: a reader's await completes without yielding while its
                # batch is buffered, and PyMongo's reads (wait_for, before Python 3.12) drop a
                # cancellation that arrives as one completes.
                await asyncio.sleep(0)
        finally:
            if stream is not None:
                stream.close()
                self._count(lines)
        if metadata is not None:
            sidecar = {name: value for name, value in metadata.items() if name != "type"}
            with self._open(_sidecar(path)) as stream:
                stream.write(json_line_utf8(sidecar))
            self._count(1)

    def existing(self) -> list[Path]:
        """The destinations that hold a file already."""
        return [destination for _, destination, _ in self._staged if destination.exists()]

    def commit(self) -> Iterator[ExportFile]:
        """Put each staged file in place, yielding it once it is there.

        Raises:
            OSError: A file cannot be put in place (the ones before it are).
        """
        while self._staged:
            temporary, destination, entries = self._staged[0]
            os.replace(temporary, destination)
            self._staged.pop(0)
            yield ExportFile(destination, entries)
