"""The importer works on several transcripts at once, each transcript's files in order."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from session_store_mongo import MongoSessionStore, NewTranscript, StoredEntry
from session_store_mongo.cli.importer import Importer
from session_store_mongo.cli.layout import Transcript
from session_store_protocol import SessionKey, StoreUnavailableError
from session_store_protocol.types import key_parts


class _SlowStore:
    """Stands in for the store: every append waits a little and records who was in flight."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.stored: dict[tuple[str, str, str], list[Any]] = {}
        self.in_flight: set[tuple[str, str, str]] = set()
        self.most_in_flight = 0
        self.overlapped_itself = False
        self.fail_on = fail_on
        self.groups: list[list[str]] = []
        self.mtimes: dict[tuple[str, str, str], datetime | None] = {}
        self.appends = 0

    async def size(self, key: SessionKey) -> int:
        return len(self.stored.get(key_parts(key), []))

    async def iter_entries(self, key: SessionKey) -> AsyncIterator[StoredEntry]:
        for seq, entry in enumerate(self.stored.get(key_parts(key), []), 1):
            yield StoredEntry(seq, key.get("subpath"), entry)

    async def append_new(self, transcripts: list[NewTranscript]) -> list[int | None]:
        self.groups.append([item.key["session_id"] for item in transcripts])
        counts: list[int | None] = []
        for key, entries, mtime in transcripts:
            if key_parts(key) in self.stored:
                counts.append(None)
            else:
                self.stored[key_parts(key)] = list(entries)
                self.mtimes[key_parts(key)] = mtime
                counts.append(len(entries))
        return counts

    async def set_mtime(self, key: SessionKey, mtime: datetime) -> bool:
        self.mtimes[key_parts(key)] = mtime
        return True

    async def append(self, key: SessionKey, entries: list[Any]) -> None:
        parts = key_parts(key)
        self.appends += 1
        if parts[1] == self.fail_on:
            raise StoreUnavailableError("append on db:27017 failed")
        self.overlapped_itself |= parts in self.in_flight
        self.in_flight.add(parts)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            await asyncio.sleep(0.01)
        finally:
            self.in_flight.discard(parts)
        self.stored.setdefault(parts, []).extend(entries)


def _tree(root: Path, sessions: int) -> list[Transcript]:
    transcripts = []
    for n in range(sessions):
        path = root / f"s{n}.jsonl"
        lines = [{"type": "user", "uuid": f"s{n}-{i}"} for i in range(3)]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        transcripts.append(Transcript(path, {"project_key": "p", "session_id": f"s{n}"}))
    return transcripts


def _importer(store: _SlowStore, group_bytes: int = 0) -> Importer:
    return Importer(
        cast(MongoSessionStore, store),
        batch_size=1,
        on_progress=lambda _: None,
        on_error=print,
        group_bytes=group_bytes,
    )


async def test_imports_up_to_jobs_transcripts_at_once(tmp_path: Path) -> None:
    """With jobs=4, four transcripts are in flight together; every entry stored, in order."""
    store = _SlowStore()
    importer = _importer(store)
    await importer.transcripts(_tree(tmp_path, 10), jobs=4)
    assert store.most_in_flight == 4
    assert importer.report.stored == 30
    assert store.stored[("p", "s7", "")] == [{"type": "user", "uuid": f"s7-{i}"} for i in range(3)]


async def test_files_of_one_transcript_go_one_after_the_other(tmp_path: Path) -> None:
    """The same transcript named twice is imported by one job, never two at once."""
    store = _SlowStore()
    importer = _importer(store)
    [transcript] = _tree(tmp_path, 1)
    await importer.transcripts([transcript, transcript, transcript], jobs=8)
    assert not store.overlapped_itself
    # This stand-in does not deduplicate: the second and third found the first's entries
    # stored, which they would not have if they had run beside it.
    assert len(store.stored[("p", "s0", "")]) == 3


async def test_a_store_failure_stops_the_import(tmp_path: Path) -> None:
    """A failing store stops every job and raises its typed error, never 'cannot read'."""
    store = _SlowStore(fail_on="s5")
    with pytest.raises(StoreUnavailableError):
        await _importer(store).transcripts(_tree(tmp_path, 20), jobs=4)
    appends = store.appends
    await asyncio.sleep(0.05)  # a job left running would go on appending
    assert store.appends == appends < 60
    assert not store.in_flight


async def test_small_new_transcripts_go_in_groups(tmp_path: Path) -> None:
    """Small files go to ``append_new`` a group at a time; transcripts that exist, one by one."""
    store = _SlowStore()
    store.stored[("p", "s1", "")] = [{"type": "user", "uuid": "held"}]
    files = _tree(tmp_path, 6)
    size = files[0].path.stat().st_size
    importer = _importer(store, group_bytes=3 * size)
    await importer.transcripts(files, jobs=2)
    assert sorted(store.groups) == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]
    assert store.stored[("p", "s1", "")][1:] == [
        {"type": "user", "uuid": f"s1-{i}"} for i in range(3)
    ]
    assert store.stored[("p", "s4", "")] == [{"type": "user", "uuid": f"s4-{i}"} for i in range(3)]
    report = importer.report
    assert (report.stored, report.transcripts, report.skipped) == (18, 6, 0)


@pytest.mark.parametrize("group_bytes", [0, 1 << 20], ids=["one-by-one", "grouped"])
async def test_created_transcripts_keep_their_files_time(tmp_path: Path, group_bytes: int) -> None:
    """A transcript the import creates gets its file's modification time.

    One that existed keeps the store's, whichever way the files go.
    """
    store = _SlowStore()
    store.stored[("p", "s1", "")] = [{"type": "user", "uuid": "held"}]
    files = _tree(tmp_path, 3)
    for n, transcript in enumerate(files):
        os.utime(transcript.path, (1_700_000_000 + n, 1_700_000_000 + n))
    await _importer(store, group_bytes=group_bytes).transcripts(files, jobs=2)
    assert store.mtimes == {
        ("p", f"s{n}", ""): datetime.fromtimestamp(1_700_000_000 + n, timezone.utc) for n in (0, 2)
    }
