"""Performance at the limit: the store against the bare driver doing the same reads and writes.

Usage (``benchmarks/run.py`` runs these on one server, one after another)::

    from benchmarks.limits import LimitsResult, bench_load_vs_find, ...

    limits = LimitsResult()
    await bench_load_vs_find(store, key, loads=7, into=limits)   # a filled session of the store
    await bench_round_trips(url, database, appends=20, into=limits)
    await bench_reappend(url, database, stored=10_000, batch=500, repeats=5, into=limits)
    await bench_summaries(url, database, sessions=(1_000, 10_000), repeats=5, into=limits)
    await bench_huge_session(url, database, entries=100_000, into=limits)

Every comparison runs side by side on the same server and the same documents, interleaved per
repetition where it repeats, so a noisy machine slows both sides alike; only ratios are read.

- **load vs find**: ``store.load`` and ``store.iter_entries`` against a bare ``find`` of the same
  documents in the store's own collection (key filter, sorted by ``seq`` through the index,
  whole documents), and that ``find`` with the inclusion projection the reader would need, with
  the BSON bytes each returns;
- **round trips**: the commands of steady-state appends, counted by a command listener;
- **re-append**: a batch of 500 already stored appended again, to a short and a long session;
- **summaries**: ``list_session_summaries`` over 1,000 and 10,000 sessions against a bare
  ``find`` of the session documents that hold the summaries;
- **huge session**: export (the CLI) and load of a 100,000-entry session, the time and peak
  resident memory of each in a process of its own, next to a process that only connects.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bson
from benchmarks.workload import PROJECT, transcript
from pymongo import ASCENDING, monitoring

from session_store_mongo import DEFAULT_COLLECTION_PREFIX, MongoSessionStore
from session_store_mongo.layout import key_fields
from session_store_mongo.redact import redact_text
from session_store_protocol.types import SessionKey, SessionStoreEntry

__all__ = [
    "LimitsResult",
    "bench_huge_session",
    "bench_load_vs_find",
    "bench_reappend",
    "bench_round_trips",
    "bench_summaries",
]

_PROJECTION = {"_id": 0, "seq": 1, "entry": 1, "escaped": 1, "chunked": 1}
"""What the reader needs of an entry document: the inclusion projection measured."""
_GROUP = 100
_FILL_BATCH = 1_000
_HUGE_ENTRY_BYTES = (300, 600)
"""Small entries for the huge session, so filling 100,000 of them stays quick."""
_PEAK_REPORT = """
import asyncio, json, re, resource, sys, time
started = time.perf_counter()
{body}
seconds = time.perf_counter() - started
try:  # this process's own peak: ru_maxrss keeps the parent's across fork and exec on Linux
    with open("/proc/self/status") as status:
        peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps([seconds, peak]), file=sys.stderr)
"""
"""A child process's script: does ``body``, then reports its seconds and peak RSS (MB)."""
_CHILDREN = {
    "connect only": """
from session_store_mongo import MongoSessionStore
async def main():
    async with MongoSessionStore(url=sys.argv[1], database=sys.argv[2]) as store:
        await store.size({"project_key": sys.argv[3], "session_id": sys.argv[4]})
asyncio.run(main())
""",
    "load": """
from session_store_mongo import MongoSessionStore
async def main():
    async with MongoSessionStore(url=sys.argv[1], database=sys.argv[2]) as store:
        entries = await store.load({"project_key": sys.argv[3], "session_id": sys.argv[4]})
        print(len(entries))
asyncio.run(main())
""",
    "export (CLI)": """
from session_store_mongo.cli import main
url, database, project, session, out = sys.argv[1:]
sys.argv = ["session-store-mongo", "--url", url, "--database", database, "--project", project,
            "export", session, "--out", out]
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
""",
}


@dataclass
class LimitsResult:
    """What the scenarios of this module measured."""

    load_entries: int = 0
    load_seconds: dict[str, list[float]] = field(default_factory=dict)
    """Per way of reading (store load, iter_entries, bare finds): seconds of each repetition."""
    load_bytes: dict[str, int] = field(default_factory=dict)
    """BSON bytes the server sends: whole documents, and with the inclusion projection."""
    commands: dict[str, list[list[str]]] = field(default_factory=dict)
    """Per transcript kind, the command names of each steady-state append."""
    reappend_batch: int = 0
    reappend_seconds: dict[int, list[float]] = field(default_factory=dict)
    """Per session size, the seconds of each re-append of the stored batch."""
    reappend_commands: dict[int, list[str]] = field(default_factory=dict)
    summaries_seconds: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    """Per session count, ``store`` and ``bare find`` listing seconds."""
    summaries_commands: dict[int, list[str]] = field(default_factory=dict)
    huge_entries: int = 0
    huge_file_bytes: int = 0
    huge: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per process (connect only, export, load): seconds and peak resident memory in MB."""
    huge_error: str = ""


class _CommandNames(monitoring.CommandListener):
    """The names of the commands a client sends, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _listening_store(url: str, database: str, listener: _CommandNames) -> MongoSessionStore:
    return MongoSessionStore(
        url=url, database=database, client_options={"event_listeners": [listener]}
    )


def _key(project: str, session: str) -> SessionKey:
    return {"project_key": project, "session_id": session}


def _expect(what: str, got: int, expected: int) -> None:
    """A benchmark of wrong answers is worthless: stop at the first one."""
    if got != expected:
        raise RuntimeError(f"{what}: got {got:,}, expected {expected:,}")


async def _interleaved(
    contestants: Mapping[str, Callable[[], Awaitable[int]]],
    repeats: int,
    expected: int,
    seed: str,
) -> dict[str, list[float]]:
    """Run each contestant ``repeats`` times in a shuffled order; check each answer's size."""
    seconds: dict[str, list[float]] = {name: [] for name in contestants}
    order = list(contestants)
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            got = await contestants[name]()
            seconds[name].append(time.perf_counter() - started)
            _expect(name, got, expected)
    return seconds


async def _fill(
    store: MongoSessionStore, key: SessionKey, entries: list[SessionStoreEntry]
) -> None:
    for start in range(0, len(entries), _FILL_BATCH):
        await store.append(key, entries[start : start + _FILL_BATCH])


# -- load against the bare find --------------------------------------------------------------


async def bench_load_vs_find(
    store: MongoSessionStore, key: SessionKey, *, loads: int, into: LimitsResult
) -> None:
    """Read one filled session through the store and by bare finds of its documents."""
    entries = store.client[store.database][f"{DEFAULT_COLLECTION_PREFIX}entries"]
    ident = key_fields(key)

    async def load() -> int:
        return len(await store.load(key) or [])

    async def iterate() -> int:
        return sum([1 async for _ in store.iter_entries(key)])

    async def find() -> int:
        return len([doc async for doc in entries.find(ident).sort("seq", ASCENDING)])

    async def find_projected() -> int:
        cursor = entries.find(ident, _PROJECTION).sort("seq", ASCENDING)
        return len([doc async for doc in cursor])

    into.load_entries = await store.size(key)
    into.load_seconds = await _interleaved(
        {
            "store.load": load,
            "store.iter_entries": iterate,
            "bare find, whole documents": find,
            "bare find, inclusion projection": find_projected,
        },
        loads,
        into.load_entries,
        "load",
    )
    whole = [doc async for doc in entries.find(ident).sort("seq", ASCENDING)]
    into.load_bytes = {
        "whole documents": sum(len(bson.encode(doc)) for doc in whole),
        "inclusion projection": sum(
            len(bson.encode({k: v for k, v in doc.items() if k in _PROJECTION})) for doc in whole
        ),
    }


# -- round trips per append ------------------------------------------------------------------


async def bench_round_trips(url: str, database: str, *, appends: int, into: LimitsResult) -> None:
    """Record the commands of steady-state appends to a main and to a subagent transcript."""
    listener = _CommandNames()
    main = _key("round-trips", "s")
    kinds: dict[str, SessionKey] = {
        "main transcript": main,
        "subagent transcript": {**main, "subpath": "subagents/agent-1"},
    }
    async with _listening_store(url, database, listener) as store:
        for kind, key in kinds.items():
            await store.append(key, transcript(f"{kind}-first", 5))  # creates the transcript
            into.commands[kind] = []
            for n in range(appends):
                listener.names.clear()
                await store.append(key, transcript(f"{kind}-{n}", 5))
                into.commands[kind].append(list(listener.names))
        await store.client.drop_database(database)


# -- re-append of a stored batch -------------------------------------------------------------


async def bench_reappend(
    url: str, database: str, *, stored: int, batch: int, repeats: int, into: LimitsResult
) -> None:
    """Append a stored batch again, to a session of just it and to one of ``stored`` more."""
    listener = _CommandNames()
    again = transcript("reappend", batch)
    sizes = [batch, stored + batch]
    keys = {size: _key("reappend", f"s{size}") for size in sizes}
    into.reappend_batch = batch
    async with _listening_store(url, database, listener) as store:
        for size in sizes:
            await _fill(store, keys[size], transcript(f"reappend-fill-{size}", size - batch))
            await store.append(keys[size], again)
            into.reappend_seconds[size] = []
        rng = random.Random("reappend")
        for _ in range(repeats):
            rng.shuffle(sizes)
            for size in sizes:
                listener.names.clear()
                started = time.perf_counter()
                await store.append(keys[size], again)
                into.reappend_seconds[size].append(time.perf_counter() - started)
                into.reappend_commands[size] = list(listener.names)
        for size in sizes:
            _expect(f"session of {size:,} after re-appends", await store.size(keys[size]), size)
        await store.client.drop_database(database)


# -- summaries -------------------------------------------------------------------------------


async def bench_summaries(
    url: str, database: str, *, sessions: Sequence[int], repeats: int, into: LimitsResult
) -> None:
    """List the summaries of projects of each size in ``sessions``, and bare-find their documents.

    The smallest project is made by ``append_new`` (a few entries per session, a hundred
    sessions at a time); the larger ones hold copies of its session documents under new session
    ids. A listing of caught-up summaries reads only session documents, so the copies list alike.
    """
    listener = _CommandNames()
    smallest = sessions[0]
    projects = {count: f"summaries-{count}" for count in sessions}
    async with _listening_store(url, database, listener) as store:
        documents = store.client[database][f"{DEFAULT_COLLECTION_PREFIX}sessions"]
        fresh = [
            (
                _key(projects[smallest], f"session-{n:05d}"),
                transcript(f"summaries-{n}", 3, session_id=f"session-{n:05d}"),
            )
            for n in range(smallest)
        ]
        for start in range(0, smallest, _GROUP):
            await store.append_new(fresh[start : start + _GROUP])
        made = [
            doc async for doc in documents.find({"project_key": projects[smallest]}, {"_id": 0})
        ]
        for count in sessions[1:]:
            copies = [
                {**doc, "project_key": projects[count], "session_id": f"{doc['session_id']}-{k}"}
                for k in range(count // smallest)
                for doc in made
            ]
            for start in range(0, len(copies), _FILL_BATCH):
                await documents.insert_many(copies[start : start + _FILL_BATCH])

        async def listing(project: str) -> int:
            return len(await store.list_session_summaries(project))

        async def find(project: str) -> int:
            query = {"project_key": project, "subpath": ""}
            return len([doc async for doc in documents.find(query)])

        for count in sessions:
            contestants = {
                "store": partial(listing, projects[count]),
                "bare find": partial(find, projects[count]),
            }
            seconds = await _interleaved(contestants, repeats, count, f"summaries-{count}")
            into.summaries_seconds[count] = seconds
            listener.names.clear()
            await listing(projects[count])
            into.summaries_commands[count] = list(listener.names)
        await store.client.drop_database(database)


# -- a huge session --------------------------------------------------------------------------


def _child(name: str, *args: str) -> tuple[float, float]:
    """Run one ``_CHILDREN`` script in a process of its own; return its seconds and peak MB."""
    script = _PEAK_REPORT.format(body=_CHILDREN[name])
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        output = " ".join(done.stderr.split())
        raise RuntimeError(f"{name} failed: {redact_text(output)[-300:]}")
    seconds, peak = json.loads(done.stderr.strip().splitlines()[-1])
    return float(seconds), float(peak)


async def bench_huge_session(url: str, database: str, *, entries: int, into: LimitsResult) -> None:
    """Fill one session with ``entries``; export it and load it, each in a process of its own."""
    session_id = "huge-session"
    key = _key(PROJECT, session_id)
    into.huge_entries = entries
    async with MongoSessionStore(url=url, database=database) as store:
        for start in range(0, entries, _FILL_BATCH):
            count = min(_FILL_BATCH, entries - start)
            batch = transcript(
                f"huge-{start}", count, size=_HUGE_ENTRY_BYTES, session_id=session_id
            )
            await store.append(key, batch)
        _expect("huge session", await store.size(key), entries)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-export-") as out:
                args = (url, database, PROJECT, session_id)
                for name in ("connect only", "export (CLI)", "load"):
                    into.huge[name] = await asyncio.to_thread(_child, name, *args, out)
                exported = Path(out) / PROJECT / f"{session_id}.jsonl"
                into.huge_file_bytes = exported.stat().st_size
                with exported.open(encoding="utf-8") as lines:
                    _expect("exported lines", sum(1 for _ in lines), entries)
        except RuntimeError as exc:
            into.huge_error = str(exc)
        finally:
            await store.client.drop_database(database)
