"""Benchmark the Mongo store against the bare driver and the seed's design, on one server.

Usage::

    make bench                                       # a throw-away SecantusDB, full run (~5 min)
    python benchmarks/run.py --url mongodb://localhost:27017
    python benchmarks/run.py --quick --out /tmp/bench   # tiny sizes: a smoke run (< 20 s)

``--url`` defaults to ``$MONGO_URL``. The run prints markdown tables and writes them, with the
machine's description, to ``<out>/latest.md``, and a plot to ``<out>/latest.png`` (``--out``
defaults to ``benchmarks/results/``).

Contestants, each in a fresh database of its own on the same server, dropped afterwards:
``MongoSessionStore`` through ``pymongo.AsyncMongoClient`` and through Motor, and encrypted at
rest (a local master key); the floor (the bare driver's ``insert_many`` / sorted ``find`` of the
same documents); and the seed's design (``benchmarks/seed_design.py``). Contestants are
interleaved in a shuffled order within each repetition, so a noisy machine slows them all alike
and the ratios stay fair.

Scenarios: append latency at growing session sizes; load time and peak memory of the longest
session; concurrent writers (with a lost/duplicated/reordered check); the store at the limit
(``benchmarks/limits.py``: load against a bare find of the same documents, commands per append,
re-append of a stored batch, ``list_session_summaries`` at 1,000 and 10,000 sessions, export
and load of a 100,000-entry session); import of a tree of 1,000 sessions through the CLI against
bare ``insert_many``; sessions past the 16 MB document limit; follow latency
(``benchmarks/follow_latency.py``: change streams against polling); and the soak of
``benchmarks/soak.py`` (many writers and readers at once).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymongo
from benchmarks.contestants import (
    PREFILL_BATCH,
    Contestant,
    FloorContestant,
    SeedContestant,
    StoreContestant,
)
from benchmarks.follow_latency import bench_follow
from benchmarks.limits import (
    LimitsResult,
    bench_huge_session,
    bench_load_vs_find,
    bench_reappend,
    bench_round_trips,
    bench_summaries,
)
from benchmarks.report import (
    ENCRYPTED,
    FLOOR,
    PLAIN,
    SEED,
    ImportResult,
    PastLimitResult,
    Results,
    WritersResult,
    render_markdown,
    write_plot,
)
from benchmarks.soak import run_soak
from benchmarks.workload import PROJECT, transcript, write_claude_projects
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from session_store_mongo import EncryptionSettings, MongoSessionStore
from session_store_mongo.layout import key_fields
from session_store_mongo.redact import redact_text, redact_url
from session_store_protocol.types import SessionKey, SessionStoreEntry

BATCH = 5
T = TypeVar("T")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """How much of each scenario to run."""

    sizes: tuple[int, ...] = (10, 1_000, 10_000)
    appends: int = 50
    loads: int = 7
    many_writers: int = 16
    one_session_writers: int = 8
    batches_per_writer: int = 25
    import_sessions: int = 1_000
    import_entries: int = 20
    import_repeats: int = 3
    round_trip_appends: int = 20
    reappend_stored: int = 10_000
    reappend_batch: int = 500
    reappend_repeats: int = 5
    summaries_sessions: tuple[int, ...] = (1_000, 10_000)
    summaries_repeats: int = 9
    huge_entries: int = 100_000
    big_entry_bytes: int = 4096
    big_entries: int = 10_000
    big_batch: int = 500
    soak_sessions: int = 50
    soak_appends: int = 200
    soak_readers: int = 4
    soak_seconds: float = 60
    follow_appends: int = 200

    @classmethod
    def quick(cls) -> Plan:
        """Tiny sizes; past the limit with few large entries instead of many small ones."""
        return cls(
            sizes=(10, 100, 300),
            appends=5,
            loads=3,
            many_writers=4,
            one_session_writers=3,
            batches_per_writer=4,
            import_sessions=12,
            import_entries=10,
            import_repeats=1,
            round_trip_appends=3,
            reappend_stored=200,
            reappend_batch=50,
            reappend_repeats=2,
            summaries_sessions=(20, 200),
            summaries_repeats=2,
            huge_entries=1_000,
            big_entry_bytes=256 * 1024,
            big_entries=80,
            big_batch=10,
            soak_sessions=3,
            soak_appends=5,
            soak_readers=1,
            soak_seconds=3,
            follow_appends=10,
        )

    def describe(self) -> str:
        return (
            f"Plan: sizes {', '.join(f'{s:,}' for s in self.sizes)}; {self.appends} appends of "
            f"{BATCH}; {self.loads} loads; writers {self.many_writers} on {self.many_writers} "
            f"sessions and {self.one_session_writers} on one, {self.batches_per_writer} batches "
            f"each; import {self.import_sessions:,} sessions x {self.import_entries}, "
            f"{self.import_repeats} times; "
            f"{self.round_trip_appends} appends counted; re-append {self.reappend_batch} to "
            f"{self.reappend_stored:,}; summaries at "
            f"{', '.join(f'{n:,}' for n in self.summaries_sessions)} sessions; a "
            f"{self.huge_entries:,}-entry session; past the limit {self.big_entries:,} x "
            f"{self.big_entry_bytes // 1024} KB in batches of {self.big_batch}; soak "
            f"{self.soak_sessions} sessions x {self.soak_appends} appends, {self.soak_readers} "
            f"readers, at most {self.soak_seconds:g} s; follow {self.follow_appends} appends "
            "per way of following."
        )


def _key(session_id: str) -> SessionKey:
    return {"project_key": "bench", "session_id": session_id}


async def _timed(call: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    value = await call()
    return time.perf_counter() - started, value


def _check_loaded(name: str, loaded: list[SessionStoreEntry] | None, expected: int) -> None:
    """A benchmark of wrong answers is worthless: stop if a contestant lost entries."""
    if len(loaded or []) != expected:
        raise RuntimeError(f"{name} loaded {len(loaded or [])} entries, expected {expected}")


# -- latency and load ----------------------------------------------------------------------


async def bench_latency_and_load(
    contestants: Sequence[Contestant], plan: Plan, results: Results
) -> None:
    """Prefill every size, then load the longest session, then append to every size."""
    rng = random.Random("interleave")
    keys = {size: _key(f"size-{size}") for size in plan.sizes}
    for size in plan.sizes:
        entries = transcript(f"prefill-{size}", size)
        for contestant in contestants:
            await contestant.prefill(keys[size], entries)
    longest = keys[plan.sizes[-1]]
    for contestant in contestants:  # the report lists contestants in this order
        results.load_seconds[contestant.name] = []
        results.append_seconds[contestant.name] = {size: [] for size in plan.sizes}
    order = list(contestants)
    for _ in range(plan.loads):
        rng.shuffle(order)
        for contestant in order:
            seconds, loaded = await _timed(partial(contestant.load, longest))
            results.load_seconds[contestant.name].append(seconds)
            _check_loaded(contestant.name, loaded, plan.sizes[-1])
    for contestant in contestants:
        gc.collect()
        tracemalloc.start()
        await contestant.load(longest)
        results.load_peak_bytes[contestant.name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Shuffle sizes with contestants: the server is still busy after a seed-design append
    # to a long session, and whatever comes next must not always be a long-session append.
    turns = [(size, contestant) for size in plan.sizes for contestant in contestants]
    for rep in range(plan.appends):
        batches = {size: transcript(f"append-{size}-{rep}", BATCH) for size in plan.sizes}
        rng.shuffle(turns)
        for size, contestant in turns:
            seconds, _ = await _timed(partial(contestant.append, keys[size], batches[size]))
            results.append_seconds[contestant.name][size].append(seconds)
    appended = plan.sizes[-1] + plan.appends * BATCH
    for contestant in contestants:
        _check_loaded(contestant.name, await contestant.load(longest), appended)


# -- concurrent writers --------------------------------------------------------------------


async def bench_writers(
    store: MongoSessionStore, label: str, writers: int, sessions: int, plan: Plan
) -> WritersResult:
    """Writers append concurrently; then check every session for loss, duplicates, order."""
    per_writer = plan.batches_per_writer * BATCH
    work = [transcript(f"{label}-writer-{w}", per_writer) for w in range(writers)]
    author = {e["uuid"]: (w, n) for w, entries in enumerate(work) for n, e in enumerate(entries)}
    keys = [_key(f"{label}-{s}") for s in range(sessions)]

    async def writer(w: int) -> None:
        for start in range(0, per_writer, BATCH):
            await store.append(keys[w % sessions], work[w][start : start + BATCH])

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    seconds = time.perf_counter() - started
    seen: set[str] = set()
    stored = duplicated = reordered = 0
    for key in keys:
        last = [-1] * writers
        for entry in await store.load(key) or []:
            stored += 1
            w, n = author[entry["uuid"]]
            duplicated += entry["uuid"] in seen
            reordered += n < last[w]
            seen.add(entry["uuid"])
            last[w] = n
    expected = writers * per_writer
    return WritersResult(
        label, writers, sessions, expected, seconds, stored,
        lost=expected - len(seen), duplicated=duplicated, reordered=reordered,
    )  # fmt: skip


# -- import --------------------------------------------------------------------------------


async def bench_import(url: str, client: AsyncMongoClient[Any], plan: Plan) -> ImportResult:
    """Import a tree of sessions through the CLI; insert the same entries with the bare driver.

    The floor gets the entries already parsed and sends one ``insert_many`` of 500 after
    another into a collection with the store's two unique indexes: what an import must do at
    the least. The CLI's time includes its start-up, reading and parsing the files. The two
    take turns, ``plan.import_repeats`` times each into fresh databases, so a change in the
    machine's load falls on both; the medians are reported.
    """
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        expected = write_claude_projects(
            root, files=plan.import_sessions, entries_per_file=plan.import_entries
        )
        documents = []
        for path in sorted((root / PROJECT).glob("*.jsonl")):
            fields = key_fields({"project_key": PROJECT, "session_id": path.stem})
            for seq, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                entry = json.loads(line)
                documents.append({**fields, "seq": seq, "dedupe": entry["uuid"], "entry": entry})
        floor_runs: list[float] = []
        cli_runs: list[float] = []
        stored, error = expected, ""
        for _ in range(plan.import_repeats):
            database = f"bench_import_{uuid.uuid4().hex[:8]}"
            floor_database = f"bench_import_floor_{uuid.uuid4().hex[:8]}"
            try:
                floor = FloorContestant(FLOOR, client, floor_database)
                await floor.setup()
                started = time.perf_counter()
                for start in range(0, len(documents), PREFILL_BATCH):
                    await floor.insert(documents[start : start + PREFILL_BATCH])
                floor_runs.append(time.perf_counter() - started)
                command = [sys.executable, "-m", "session_store_mongo.cli", "--database", database]
                started = time.perf_counter()
                done = await asyncio.to_thread(
                    subprocess.run,
                    [*command, "import", str(root)],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={**os.environ, "MONGO_URL": url},
                )
                cli_runs.append(time.perf_counter() - started)
                if done.returncode and not error:
                    output = " ".join((done.stderr or done.stdout).split())
                    error = f"exit {done.returncode}: {redact_text(output)[:300]}"
                async with MongoSessionStore(url=url, database=database) as store:
                    held = (await store.stats()).entries
                stored = held if held != expected else stored  # a wrong run is the one shown
            finally:
                await client.drop_database(database)
                await client.drop_database(floor_database)
    return ImportResult(
        "CLI: session-store-mongo import",
        plan.import_sessions,
        expected,
        stored,
        statistics.median(cli_runs),
        statistics.median(floor_runs),
        error,
        repeats=plan.import_repeats,
    )


# -- past the 16 MB document limit ---------------------------------------------------------


async def bench_past_limit(contestant: Contestant, plan: Plan) -> PastLimitResult:
    """Fill one session with large entries by batches; note where (if) it breaks."""
    key = _key("past-limit")
    size = (plan.big_entry_bytes, plan.big_entry_bytes)
    entries = transcript("past-limit", plan.big_entries, size=size)
    result = PastLimitResult(
        contestant.name, plan.big_entry_bytes, plan.big_entries, held=0, fill_seconds=0.0
    )
    started = time.perf_counter()
    for start in range(0, len(entries), plan.big_batch):
        try:
            await contestant.append(key, entries[start : start + plan.big_batch])
        except PyMongoError as exc:
            code = getattr(exc, "code", None)
            message = redact_text(str(exc).split(", full error")[0])[:200]
            result.error = (
                f"failed appending to a session of {start:,} entries: {type(exc).__name__} "
                f"(code {code}): {message}"
            )
            break
        result.held = start + len(entries[start : start + plan.big_batch])
    result.fill_seconds = time.perf_counter() - started
    if result.error:
        return result
    for rep in range(3):
        batch = transcript(f"past-limit-more-{rep}", BATCH, size=size)
        seconds, _ = await _timed(partial(contestant.append, key, batch))
        result.append_seconds.append(seconds)
        result.held += BATCH
    for _ in range(2):
        seconds, loaded = await _timed(partial(contestant.load, key))
        result.load_seconds.append(seconds)
        result.loaded = len(loaded or [])
    return result


# -- machine and orchestration -------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


async def machine_info(client: AsyncMongoClient[Any], url: str) -> dict[str, str]:
    """Describe the machine, the drivers and the server the numbers come from."""
    build = await client.admin.command("buildInfo")
    hello = await client.admin.command("hello")
    server = f"MongoDB {build.get('version', '?')}"
    if "secantusVersion" in build:
        server = f"SecantusDB {build['secantusVersion']} (reports {server})"
    topology = f"replica set {hello['setName']}" if hello.get("setName") else "standalone"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "pymongo": pymongo.version,
        "motor": metadata.version("motor"),
        "server": f"{server}, {topology}, maxBsonObjectSize {hello.get('maxBsonObjectSize')}",
        "URL": redact_url(url),
    }


async def run_benchmarks(url: str, plan: Plan) -> Results:
    """Run every scenario but the soak against the server at ``url``."""
    from motor.motor_asyncio import AsyncIOMotorClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    motor_client: Any = AsyncIOMotorClient(url)
    run_id = uuid.uuid4().hex[:8]
    store = StoreContestant(PLAIN, client, f"bench_store_{run_id}")
    seed = SeedContestant(SEED, client, f"bench_seed_{run_id}")
    encrypted_database = f"bench_encrypted_{run_id}"
    encryption = EncryptionSettings(
        kms_providers={"local": {"key": os.urandom(96)}},
        key_vault_namespace=f"{encrypted_database}.__keyVault",
    )
    contestants: list[Contestant] = [
        store,
        StoreContestant(ENCRYPTED, client, encrypted_database, encryption=encryption),
        StoreContestant("store (motor)", motor_client, f"bench_motor_{run_id}"),
        StoreContestant(
            "store, subagent transcript (pymongo)",
            client,
            f"bench_sub_{run_id}",
            subpath="subagents/agent-bench",
        ),
        FloorContestant(FLOOR, client, f"bench_floor_{run_id}"),
        seed,
    ]
    results = Results(await machine_info(client, url), list(plan.sizes), plan.sizes[-1])
    results.plan = plan.describe()
    try:
        for contestant in contestants:
            await contestant.setup()
        _progress("append latency and load")
        await bench_latency_and_load(contestants, plan, results)
        _progress("concurrent writers")
        writers = StoreContestant("writers", client, f"bench_writers_{run_id}")
        contestants.append(writers)
        for label, count, sessions in (
            ("many sessions", plan.many_writers, plan.many_writers),
            ("one session", plan.one_session_writers, 1),
        ):
            results.writers.append(await bench_writers(writers.store, label, count, sessions, plan))
        _progress("load against the bare find")
        limits = results.limits = LimitsResult()
        longest = _key(f"size-{plan.sizes[-1]}")
        await bench_load_vs_find(store.store, longest, loads=plan.loads, into=limits)
        _progress("commands per append")
        await bench_round_trips(
            url, f"bench_rt_{run_id}", appends=plan.round_trip_appends, into=limits
        )
        _progress("re-append")
        await bench_reappend(
            url,
            f"bench_reappend_{run_id}",
            stored=plan.reappend_stored,
            batch=plan.reappend_batch,
            repeats=plan.reappend_repeats,
            into=limits,
        )
        _progress("summaries")
        await bench_summaries(
            url,
            f"bench_summaries_{run_id}",
            sessions=plan.summaries_sessions,
            repeats=plan.summaries_repeats,
            into=limits,
        )
        _progress("import")
        results.imports.append(await bench_import(url, client, plan))
        _progress("a huge session")
        await bench_huge_session(
            url, f"bench_huge_{run_id}", entries=plan.huge_entries, into=limits
        )
        _progress("past the 16 MB limit")
        for contestant in (store, seed):
            results.past_limit.append(await bench_past_limit(contestant, plan))
        _progress("follow latency")
        results.follow = await bench_follow(url, appends=plan.follow_appends)
        _progress("soak")
        results.soak_readers = plan.soak_readers
        results.soak = await run_soak(
            url,
            sessions=plan.soak_sessions,
            appends=plan.soak_appends,
            readers=plan.soak_readers,
            max_seconds=plan.soak_seconds,
        )
    finally:
        for contestant in contestants:
            await contestant.drop()
        await client.close()
        motor_client.close()
    return results


def _progress(step: str) -> None:
    print(f"benchmarks: {step}...", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MONGO_URL"), help="default: $MONGO_URL")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no server: pass --url or set MONGO_URL (make bench starts one)")
    plan = Plan.quick() if args.quick else Plan()
    started = time.perf_counter()
    results = asyncio.run(run_benchmarks(args.url, plan))
    report = render_markdown(results)
    report += f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s.\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(report, encoding="utf-8")
    write_plot(results, args.out / "latest.png")
    print(
        f"benchmarks: wrote {args.out / 'latest.md'} and {args.out / 'latest.png'}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
