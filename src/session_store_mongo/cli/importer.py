"""Claude Code transcripts into a store, in batches, idempotently (``session-store-mongo import``).

Usage::

    from session_store_mongo.cli.importer import Importer

    importer = Importer(store, batch_size=500, on_progress=advance, on_error=print)
    await importer.transcripts(find_transcripts(path), jobs=8)   # 8 transcripts at a time
    importer.report          # files done, sessions, transcripts, entries stored, duplicates
                             # skipped, errors, and files that stored nothing

A malformed line is reported as ``file:line`` and skipped; the rest of the file goes on. A
subagent's ``.meta.json`` sidecar is appended after its lines as the SDK's import does
(``{**sidecar, "type": "agent_metadata"}``). Importing the same files again stores nothing twice:
the store skips entries whose ``uuid`` it holds, and the importer skips entries without ``uuid``
that the transcript already holds; so an import stopped half-way (Ctrl-C) resumes when run
again. A transcript the import creates keeps its file's modification time as its last write, so
listings order imported sessions by when they were last used, as Claude Code's own picker does;
one that existed keeps the store's.

Several transcripts are imported at once: an append waits on the server for most of its time,
so one process keeps the server busy only with several appends in flight. The files of one
transcript (the same file named twice) go one after the other, in order.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from session_store_protocol.errors import InvalidEntryError, InvalidKeyError, KeyDestroyedError
from session_store_protocol.types import SessionKey, SessionStoreEntry, key_parts
from session_store_protocol.validation import entry_uuid

from ..store import MongoSessionStore, NewTranscript
from .layout import LayoutError, Transcript, read_entries, read_metadata

__all__ = ["DEFAULT_GROUP_BYTES", "ImportReport", "Importer"]

DEFAULT_GROUP_BYTES = 1 << 20


@dataclass
class ImportReport:
    """What an import did, for the summary table."""

    files: int = 0
    """Files done: stored, held already, or refused (a file in progress is not counted)."""
    sessions: set[tuple[str, str]] = field(default_factory=set)
    """Sessions with at least one entry from the files now in the store."""
    transcripts: int = 0
    """Files with at least one entry now in the store (stored now, or held already)."""
    nothing_stored: int = 0
    """Files none of whose lines is in the store: empty, or every line refused."""
    stored: int = 0
    """Entries the files done stored (a file in progress may have stored some too)."""
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class Importer:
    """Streams transcripts into the store in batches, reporting bad lines and duplicates."""

    def __init__(
        self,
        store: MongoSessionStore,
        *,
        batch_size: int,
        on_progress: Callable[[int], None],
        on_error: Callable[[str], None],
        group_bytes: int = DEFAULT_GROUP_BYTES,
    ) -> None:
        """Import into ``store``.

        Args:
            store: The open store.
            batch_size: Entries per ``append``.
            on_progress: Called with the bytes of each line read.
            on_error: Called with each ``file:line: problem`` as it is found.
            group_bytes: Files read whole and offered to ``append_new`` together, at most
                this many bytes a group; a bigger file streams through ``append`` (0: all do).
        """
        self._store = store
        self._batch_size = batch_size
        self._group_bytes = group_bytes
        self._on_progress = on_progress
        self._on_error = on_error
        self.report = ImportReport()

    def _error(self, message: str) -> None:
        self.report.errors.append(message)
        self._on_error(message)

    async def _append(
        self, transcript: Transcript, batch: list[SessionStoreEntry], sources: list[str]
    ) -> int:
        """Append one batch; return how many entries it offered (those the store accepted).

        The store refuses a whole batch for one bad entry; the batch is then offered entry by
        entry, so every good line is stored, in order, and each bad one reported as file:line.
        """
        try:
            await self._store.append(transcript.key, batch)
        except InvalidEntryError as exc:
            if len(batch) == 1:
                self._error(f"{sources[0]}: refused: {exc}")
                return 0
            offered = 0
            for entry, source in zip(batch, sources, strict=True):
                offered += await self._append(transcript, [entry], [source])
            return offered
        return len(batch)

    async def _stored(self, key: SessionKey) -> _Stored:
        """What ``key`` holds already: its uuids, and its entries without one, counted.

        The store appends entries without uuid on every call (the contract has no other
        identity for them), so a re-import must skip the ones already there itself. Entries
        with a stored uuid the store would skip; the importer does not send them at all, so
        a run that adds nothing writes nothing (the transcript's last write stays as it was).
        """
        stored = _Stored()
        async for item in self._store.iter_entries(key):  # one pass, however long
            uuid = entry_uuid(item.entry)
            if uuid is None:
                stored.without_uuid[_canonical(item.entry)] += 1
            else:
                stored.uuids.add(uuid)
        return stored

    async def transcripts(self, transcripts: Iterable[Transcript], *, jobs: int) -> None:
        """Import files, up to ``jobs`` at a time; the files of one transcript in order.

        Small files of transcripts named once go in groups through ``append_new``: a group of
        new transcripts costs two round trips, where appending each would cost several.

        Raises:
            SessionStoreError: The store failed; the work in flight is cancelled.
        """
        by_key: dict[tuple[str, str, str], list[Transcript]] = {}
        for transcript in transcripts:
            by_key.setdefault(key_parts(transcript.key), []).append(transcript)
        work: list[Callable[[], Awaitable[None]]] = []
        group: list[Transcript] = []
        group_bytes = 0
        for files in by_key.values():
            size = _size(files[0])
            if len(files) > 1 or size > self._group_bytes:
                work.append(functools.partial(self._in_turn, files))
                continue
            if group and group_bytes + size > self._group_bytes:
                work.append(functools.partial(self._new_ones, group))
                group, group_bytes = [], 0
            group.append(files[0])
            group_bytes += size
        if group:
            work.append(functools.partial(self._new_ones, group))
        pending = iter(work)

        async def worker() -> None:
            for job in pending:  # shared: each job is taken by one worker
                await job()

        workers = [asyncio.ensure_future(worker()) for _ in range(min(jobs, len(work)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _in_turn(self, files: list[Transcript]) -> None:
        for transcript in files:
            await self.transcript(transcript)

    async def _new_ones(self, group: list[Transcript]) -> None:
        """Store a group of small files at once if their transcripts are new; else one by one."""
        read = [(transcript, list(self._lines(transcript))) for transcript in group]
        try:
            stored = await self._store.append_new(
                [
                    NewTranscript(transcript.key, [entry for entry, _ in lines], _mtime(transcript))
                    for transcript, lines in read
                ]
            )
        except (InvalidEntryError, InvalidKeyError, KeyDestroyedError):
            # One at a time: bad lines reported by file:line, a forgotten transcript by file.
            stored = [None] * len(read)
        for (transcript, lines), count in zip(read, stored, strict=True):
            if count is None:
                await self.transcript(transcript, lines)
            else:
                self._count(transcript, offered=len(lines), stored=count)

    async def transcript(
        self, transcript: Transcript, lines: Iterable[tuple[SessionStoreEntry, str]] | None = None
    ) -> None:
        """Import one file (and its metadata sidecar); a key the store refuses skips the file.

        So does a transcript whose data key ``forget`` destroyed: it takes no more entries.
        ``lines`` are the file's entries if they were read already, each with its source.
        """
        try:
            await self._import(transcript, self._lines(transcript) if lines is None else lines)
        except InvalidKeyError as exc:
            self._refused(f"{transcript.path}: cannot be stored under its key: {exc}")
        except KeyDestroyedError as exc:
            self._refused(f"{transcript.path}: refused: {exc}")

    def _refused(self, message: str) -> None:
        """Report a file the store refuses whole: it is done, with nothing counted."""
        self.report.files += 1
        self._error(message)

    def _lines(self, transcript: Transcript) -> Iterator[tuple[SessionStoreEntry, str]]:
        """The file's entries and its sidecar's, each with its source; bad lines reported."""
        try:
            for line in read_entries(transcript.path):
                self._on_progress(line.size)
                if line.entry is None:
                    self._error(f"{transcript.path}:{line.number}: {line.error}")
                else:
                    yield line.entry, f"{transcript.path}:{line.number}"
        except OSError as exc:
            self._error(f"{transcript.path}: cannot read: {exc.strerror or exc}")
        if transcript.metadata is not None:
            try:
                yield read_metadata(transcript.metadata), str(transcript.metadata)
            except LayoutError as exc:
                self._error(str(exc))
            except OSError as exc:
                self._error(f"{transcript.metadata}: cannot read: {exc.strerror or exc}")

    async def _import(
        self, transcript: Transcript, lines: Iterable[tuple[SessionStoreEntry, str]]
    ) -> None:
        """Import one file; entries the transcript holds already are counted, not sent.

        The store's count before and after tells what was stored; another writer's entries
        landing meanwhile cannot make it more than was sent.
        """
        before = await self._store.size(transcript.key)
        already = await self._stored(transcript.key) if before else _Stored()
        offered = sent = 0
        batch: list[SessionStoreEntry] = []
        sources: list[str] = []
        for entry, source in lines:
            if already.holds(entry):
                offered += 1
                continue
            sent += 1
            batch.append(entry)
            sources.append(source)
            if len(batch) >= self._batch_size:
                offered += await self._append(transcript, batch, sources)
                batch, sources = [], []
        if batch:
            offered += await self._append(transcript, batch, sources)
        stored = min(await self._store.size(transcript.key) - before, sent)
        mtime = _mtime(transcript)
        if not before and stored and mtime is not None:
            await self._store.set_mtime(transcript.key, mtime)  # created here: as append_new
        self._count(transcript, offered=offered, stored=stored)

    def _count(self, transcript: Transcript, *, offered: int, stored: int) -> None:
        """Add one file to the report: ``offered`` entries accepted, ``stored`` of them new."""
        self.report.files += 1
        self.report.stored += stored
        if not offered:
            self.report.nothing_stored += 1
            return
        self.report.transcripts += 1
        self.report.sessions.add((transcript.key["project_key"], transcript.key["session_id"]))
        self.report.skipped += max(offered - stored, 0)


def _size(transcript: Transcript) -> int:
    """The bytes of a file and its metadata sidecar (0 if unreadable: reported when read)."""
    paths = [transcript.path, transcript.metadata]
    try:
        return sum(path.stat().st_size for path in paths if path is not None)
    except OSError:
        return 0


def _mtime(transcript: Transcript) -> datetime | None:
    """The file's modification time, kept as the last-write time of a transcript it creates."""
    try:
        return datetime.fromtimestamp(transcript.path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


@dataclass
class _Stored:
    """The entries a transcript holds: uuids, and canonical entries without one, counted."""

    uuids: set[str] = field(default_factory=set)
    without_uuid: Counter[str] = field(default_factory=Counter)

    def holds(self, entry: SessionStoreEntry) -> bool:
        """Whether ``entry`` is stored already (an entry without uuid: once per copy held)."""
        uuid = entry_uuid(entry)
        if uuid is not None:
            return uuid in self.uuids
        canonical = _canonical(entry)
        if self.without_uuid[canonical] > 0:
            self.without_uuid[canonical] -= 1
            return True
        return False


def _canonical(entry: SessionStoreEntry) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)
