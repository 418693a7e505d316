"""The in-memory reference store (kind ``memory``): every method, no persistence.

Usage::

    from session_store_protocol import InMemorySessionStore

    store = InMemorySessionStore()
    await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user", "uuid": "u1"}])
    assert await store.load({"project_key": "p", "session_id": "s"}) == [
        {"type": "user", "uuid": "u1"}
    ]

Each call finishes without awaiting anything, so concurrent asyncio tasks never interleave
inside one; the store is not meant to be shared between threads.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from .summaries import load_fold, optional_fold
from .types import (
    MAIN_SUBPATH,
    KeyParts,
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    key_parts,
)
from .validation import (
    copy_entries,
    entry_uuid,
    validate_key,
    validate_project_key,
    validate_session_key,
)

__all__ = ["InMemorySessionStore"]


@dataclass
class _Transcript:
    entries: list[SessionStoreEntry] = field(default_factory=list)
    uuids: set[str] = field(default_factory=set)
    mtime: int = 0
    summary: SessionSummaryEntry | None = None
    folded: int = 0
    """How many entries the summary has folded; the rest are caught up on the next read."""


class InMemorySessionStore:
    """A ``SessionStore`` held in a dict: the reference for every store in this project.

    ``uuid`` idempotency, subkeys, cascading delete, summaries and ``mtime`` in epoch
    milliseconds behave exactly as a persistent store's do. Entries are deep-copied in and out,
    so callers cannot change what is stored by mutating their objects.
    """

    def __init__(self) -> None:
        self._transcripts: dict[KeyParts, _Transcript] = {}
        self._last_mtime = 0

    def _now_ms(self) -> int:
        # Strictly increasing, so back-to-back appends get distinct mtimes, as a database's do.
        self._last_mtime = max(int(time.time() * 1000), self._last_mtime + 1)
        return self._last_mtime

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Append entries, skipping any whose ``uuid`` the transcript already holds."""
        clean = validate_key(key)
        batch = copy_entries(entries)  # plain JSON copies: what a database could hold
        if not batch:
            return
        ident = key_parts(clean)
        transcript = self._transcripts.setdefault(ident, _Transcript())
        for entry in batch:
            uuid = entry_uuid(entry)
            if uuid is not None:
                if uuid in transcript.uuids:
                    continue
                transcript.uuids.add(uuid)
            transcript.entries.append(entry)
        transcript.mtime = self._now_ms()
        if ident[2] == MAIN_SUBPATH:
            self._fold(transcript, clean, strict=False)

    def _fold(self, transcript: _Transcript, key: SessionKey, *, strict: bool) -> None:
        """Fold the entries the summary has not seen; without the SDK, raise only if strict."""
        if transcript.folded == len(transcript.entries) and transcript.summary is not None:
            transcript.summary["mtime"] = transcript.mtime
            return
        fold = load_fold() if strict else optional_fold()
        if fold is None:
            return
        summary = fold(transcript.summary, key, transcript.entries[transcript.folded :])
        summary["mtime"] = transcript.mtime
        transcript.summary = summary
        transcript.folded = len(transcript.entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return a deep copy of the transcript, or ``None`` if it was never written."""
        clean = validate_key(key)
        ident = key_parts(clean)
        transcript = self._transcripts.get(ident)
        return None if transcript is None else copy.deepcopy(transcript.entries)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """List the project's main transcripts with their last write time."""
        project = validate_project_key(project_key)
        return [
            {"session_id": session_id, "mtime": transcript.mtime}
            for (pk, session_id, subpath), transcript in self._transcripts.items()
            if pk == project and subpath == MAIN_SUBPATH
        ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Return each main transcript's summary, folding whatever was appended since."""
        project = validate_project_key(project_key)
        summaries: list[SessionSummaryEntry] = []
        for (pk, session_id, subpath), transcript in self._transcripts.items():
            if pk != project or subpath != MAIN_SUBPATH:
                continue
            self._fold(transcript, {"project_key": pk, "session_id": session_id}, strict=True)
            assert transcript.summary is not None  # _fold(strict=True) sets it or raises
            summaries.append(copy.deepcopy(transcript.summary))
        return summaries

    async def delete(self, key: SessionKey) -> None:
        """Delete a transcript; a main key takes its subkeys with it."""
        clean = validate_key(key)
        project, session_id = clean["project_key"], clean["session_id"]
        if "subpath" in clean:
            self._transcripts.pop((project, session_id, clean["subpath"]), None)
            return
        for ident in [i for i in self._transcripts if i[:2] == (project, session_id)]:
            del self._transcripts[ident]

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """List the subpaths stored under the session."""
        clean = validate_session_key(key)
        return sorted(
            subpath
            for (pk, session_id, subpath) in self._transcripts
            if (pk, session_id) == (clean["project_key"], clean["session_id"]) and subpath
        )
