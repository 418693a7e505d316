"""Copy the sessions of ``@open-gitagent/session-store-mongo`` 0.2 into a ``MongoSessionStore``.

Usage::

    from session_store_mongo.migrate import migrate

    source = client["computeragent_sessions"]["sessions"]     # the predecessor's collection
    async with MongoSessionStore(client=client) as store:
        plan = await migrate(source, store, dry_run=True)     # what a run would meet
        report = await migrate(source, store)                 # copy, then verify
        report = await migrate(source, store, drop_source=True)  # and delete what verified

``session-store-mongo migrate`` is this function with a progress bar and a summary table. For
each source document (one session: ``{_id, projectKey, entries, updatedAt}``):

1. It is checked as every store checks an append; a malformed one is reported by its ``_id``
   and skipped.
2. Its entries are split into transcripts. The predecessor ignored ``subpath``, so a subagent's
   entries sit in the array of the session that spawned it. Claude Code marks them
   (``isSidechain: true`` with the subagent's ``agentId``) and they go back under
   ``subagents/agent-<agentId>``, where the SDK looks; an ``agent_metadata`` entry, a
   subagent's by definition, goes by its ``agentId`` too. A marked entry without a usable
   ``agentId`` stays in the main transcript and is reported.
3. Each transcript is appended in order, in batches, through the store's own ``append``, so
   its summary is folded (when the SDK is installed) as for any append. What the store holds
   already is not appended again: when the stored transcript is the start of the source's,
   only the rest is appended, so a run that was interrupted and is run again duplicates
   nothing, entries without ``uuid`` included. A stored transcript that differs from the
   source is reported and left alone. An entry whose ``uuid`` came earlier in the same
   transcript is stored once (the contract's idempotency) and reported.
4. Each transcript's ``mtime`` becomes the document's ``updatedAt`` (``set_mtime``), so
   listings keep their order.

A verification pass then reads every document again and checks that each transcript loads
deep-equal to its source entries (or starts with them, if the harness has appended since).
With ``drop_source``, and only when nothing was skipped or failed verification, the verified
documents are deleted (each only if its ``updatedAt`` is unchanged) and the emptied collection
dropped. Otherwise the source is never written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from session_store_protocol.errors import InvalidStoreOptionsError
from session_store_protocol.types import MAIN_SUBPATH, SessionKey, SessionStoreEntry
from session_store_protocol.validation import entry_label, entry_uuid

from .predecessor import MalformedSessionError, PredecessorSession, read_session
from .store import MongoSessionStore

__all__ = [
    "DEFAULT_BATCH",
    "MigrationReport",
    "Problem",
    "migrate",
    "split_transcripts",
]

DEFAULT_BATCH = 500
"""Entries per ``append`` (a 16 MB predecessor document holds a few thousand)."""
_BLOCKING = frozenset({"malformed", "diverged", "mismatch"})
_AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ID_SHOWN = 80


@dataclass(frozen=True)
class Problem:
    """Something a migration met in one source document."""

    kind: str
    """``malformed`` (skipped), ``unattributed`` (kept in the main transcript), ``duplicate``
    (stored once), ``diverged`` (the store holds something else; left alone) or ``mismatch``
    (failed verification)."""
    document: str
    """The source document's ``_id``, as Python writes it."""
    detail: str


@dataclass
class MigrationReport:
    """What a migration (or a dry run) did and met."""

    dry_run: bool
    documents: int = 0
    """Source documents read."""
    sessions: int = 0
    """Sessions with entries (copied, or to copy in a dry run)."""
    empty: int = 0
    """Sessions without entries: nothing to copy (the store keeps no empty transcript)."""
    transcripts: int = 0
    subagent_transcripts: int = 0
    """Of ``transcripts``, those split out under ``subagents/agent-<agentId>``."""
    entries: int = 0
    """Entries in the sessions read."""
    bytes: int = 0
    """Their size as compact JSON."""
    copied: int = 0
    """Entries this run appended (a dry run: would append)."""
    present: int = 0
    """Entries the store held already, from an earlier run."""
    verified: int = 0
    """Transcripts that load deep-equal to their source entries."""
    dropped: int = 0
    """Source documents deleted (``drop_source``)."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every document was copied and verified: nothing skipped, diverged or wrong."""
        return not any(problem.kind in _BLOCKING for problem in self.problems)

    def count(self, kind: str) -> int:
        """How many problems of ``kind`` were met."""
        return sum(problem.kind == kind for problem in self.problems)


def split_transcripts(
    entries: list[SessionStoreEntry],
) -> tuple[dict[str, list[SessionStoreEntry]], list[int]]:
    """Split a predecessor session's entries into its transcripts, by subpath.

    Returns:
        The transcripts in order of first appearance, keyed by subpath (``""`` is the main
        transcript), and the indexes of entries marked as a subagent's without a usable
        ``agentId`` (kept in the main transcript).
    """
    transcripts: dict[str, list[SessionStoreEntry]] = {}
    unattributed: list[int] = []
    for index, entry in enumerate(entries):
        subpath = MAIN_SUBPATH
        if entry.get("isSidechain") is True or entry.get("type") == "agent_metadata":
            agent_id = entry.get("agentId")
            if isinstance(agent_id, str) and _AGENT_ID.fullmatch(agent_id):
                subpath = f"subagents/agent-{agent_id}"
            else:
                unattributed.append(index)
        transcripts.setdefault(subpath, []).append(entry)
    return transcripts, unattributed


async def migrate(
    source: Any,
    store: MongoSessionStore,
    *,
    dry_run: bool = False,
    drop_source: bool = False,
    batch_size: int = DEFAULT_BATCH,
    on_document: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy every session of the predecessor's ``source`` collection into ``store``.

    Args:
        source: The predecessor's collection (PyMongo async or Motor), read and, with
            ``drop_source``, emptied of what was verified.
        store: The store to copy into.
        dry_run: Only read: count sessions, entries and bytes, and the problems a run would
            meet (the store is read to tell what it holds already, never written).
        drop_source: After a complete, verified run, delete the verified documents.
        batch_size: Entries per ``append``.
        on_document: Called with ``"copy"`` or ``"verify"`` after each document of that pass.

    Returns:
        The report; ``report.complete`` says whether everything was copied and verified.

    Raises:
        InvalidStoreOptionsError: ``dry_run`` with ``drop_source``, or a bad ``batch_size``.
        ForeignCollectionError: The store's collections hold foreign data.
        StoreUnavailableError: The store's server failed; running again resumes.
    """
    if dry_run and drop_source:
        raise InvalidStoreOptionsError("drop_source needs a real run, not a dry run")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidStoreOptionsError("batch_size must be a positive integer")
    report = MigrationReport(dry_run=dry_run)
    notify = on_document or (lambda phase: None)
    copier = _Copier(store, report, dry_run=dry_run, batch_size=batch_size)
    # One document at a time by _id: a cursor held open while sessions are copied would time
    # out on the server between two batches of many small documents.
    ids = [doc["_id"] async for doc in source.find({}, {"_id": 1}).sort("_id", 1)]
    for _id in ids:
        doc = await source.find_one({"_id": _id})
        if doc is not None:  # deleted meanwhile
            await copier.document(doc)
        notify("copy")
    if dry_run:
        return report
    verified: list[Mapping[str, Any]] = []
    for _id in ids:
        doc = await source.find_one({"_id": _id})
        if doc is not None and await copier.verify(doc):
            verified.append({"_id": _id, "updatedAt": doc.get("updatedAt")})
        notify("verify")
    if drop_source and report.complete:
        for selector in verified:  # a document the predecessor changed since is kept
            report.dropped += (await source.delete_one(selector)).deleted_count
        if await source.find_one({}) is None:
            await source.drop()
    return report


def _label(doc: Mapping[str, Any]) -> str:
    text = repr(doc.get("_id"))
    return text if len(text) <= _ID_SHOWN else text[: _ID_SHOWN - 1] + "…"


class _Copier:
    """The two passes over the source: copy each document's transcripts, then verify them."""

    def __init__(
        self, store: MongoSessionStore, report: MigrationReport, *, dry_run: bool, batch_size: int
    ) -> None:
        self._store = store
        self._report = report
        self._dry_run = dry_run
        self._batch_size = batch_size
        self._skipped: set[str] = set()
        """The ``_id`` (as ``repr``) of documents skipped in the copy pass: not verified."""

    def _problem(self, kind: str, doc: Mapping[str, Any], detail: str) -> None:
        self._report.problems.append(Problem(kind, _label(doc), detail))
        if kind in _BLOCKING:
            self._skipped.add(repr(doc.get("_id")))

    def _transcripts(
        self, doc: Mapping[str, Any], session: PredecessorSession, *, report: bool
    ) -> list[tuple[SessionKey, list[SessionStoreEntry]]]:
        """The session's transcripts as the store will hold them: key and expected entries."""
        split, unattributed = split_transcripts(session.entries)
        if report and unattributed:
            shown = ", ".join(entry_label(i, session.entries[i]) for i in unattributed[:5])
            self._problem(
                "unattributed",
                doc,
                f"{_entries(len(unattributed))} marked as a subagent's without a usable agentId "
                f"({shown}{', ...' if len(unattributed) > 5 else ''}); kept in the main transcript",
            )
        transcripts = []
        for subpath, entries in split.items():
            key: SessionKey = {"project_key": session.project_key, "session_id": session.session_id}
            if subpath != MAIN_SUBPATH:
                key["subpath"] = subpath
            expected, repeated = _first_of_each_uuid(entries)
            if report and repeated:
                self._problem(
                    "duplicate",
                    doc,
                    f"{_where(key)}: {_entries(len(repeated))} repeating an earlier uuid "
                    f"({', '.join(map(repr, repeated[:5]))}); each is stored once",
                )
            transcripts.append((key, expected))
        return transcripts

    async def document(self, doc: Mapping[str, Any]) -> None:
        """Copy one source document's transcripts (or, in a dry run, count what it holds)."""
        report = self._report
        report.documents += 1
        try:
            session = read_session(doc)
        except MalformedSessionError as exc:
            self._problem("malformed", doc, f"skipped: {exc}")
            return
        if not session.entries:
            report.empty += 1
            return
        report.sessions += 1
        report.entries += len(session.entries)
        report.bytes += session.bytes
        for key, expected in self._transcripts(doc, session, report=True):
            report.transcripts += 1
            if "subpath" in key:
                report.subagent_transcripts += 1
            stored = await self._store.load(key) or []
            present = _shared_start(stored, expected)
            if present is None:
                self._problem(
                    "diverged",
                    doc,
                    f"{_where(key)}: the store holds {_entries(len(stored))} that differ from the "
                    f"source's {len(expected)}; left alone (delete it to copy it again)",
                )
                continue
            rest = expected[present:]
            report.present += present
            report.copied += len(rest)
            if self._dry_run:
                continue
            for start in range(0, len(rest), self._batch_size):
                await self._store.append(key, rest[start : start + self._batch_size])
            if session.updated_at is not None and len(stored) <= len(expected):
                await self._store.set_mtime(key, session.updated_at)

    async def verify(self, doc: Mapping[str, Any]) -> bool:
        """Whether each of the document's transcripts loads as its source entries."""
        if repr(doc.get("_id")) in self._skipped:
            return False
        try:
            session = read_session(doc)
        except MalformedSessionError:  # changed since the copy pass
            self._problem("mismatch", doc, "malformed since it was copied; not verified")
            return False
        ok = True
        for key, expected in self._transcripts(doc, session, report=False):
            stored = await self._store.load(key) or []
            if _shared_start(stored, expected) == len(expected):
                self._report.verified += 1
                continue
            ok = False
            self._problem(
                "mismatch",
                doc,
                f"{_where(key)}: loads {_entries(len(stored))}, not the source's {len(expected)}",
            )
        return ok


def _where(key: SessionKey) -> str:
    """Which transcript of the document's session a problem is in."""
    return key.get("subpath", "main transcript")


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _first_of_each_uuid(
    entries: list[SessionStoreEntry],
) -> tuple[list[SessionStoreEntry], list[str]]:
    """The entries the store keeps (a uuid's first entry), and the uuids repeated later."""
    seen: set[str] = set()
    kept: list[SessionStoreEntry] = []
    repeated: list[str] = []
    for entry in entries:
        uuid = entry_uuid(entry)
        if uuid is not None and uuid in seen:
            repeated.append(uuid)
            continue
        if uuid is not None:
            seen.add(uuid)
        kept.append(entry)
    return kept, repeated


def _shared_start(stored: list[SessionStoreEntry], expected: list[SessionStoreEntry]) -> int | None:
    """How many of ``expected`` the store holds as its start; ``None`` if the two differ."""
    shared = min(len(stored), len(expected))
    return shared if stored[:shared] == expected[:shared] else None
