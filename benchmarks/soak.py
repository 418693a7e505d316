"""Soak test: many concurrent writers and readers on one store, then every transcript checked.

Usage::

    python -m devtools.secantus run -- python benchmarks/soak.py --sessions 50 --appends 200

    from benchmarks.soak import run_soak
    result = await run_soak(url, sessions=20, appends=50)
    assert result.complete and not result.errors

One task per session appends small, realistic batches (each entry with a uuid) while reader
tasks load random sessions and check that what they see is in order. Bounded in count and in
time (writers stop early after ``max_seconds``); loopback servers only. The store writes to a
database of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from session_store_mongo import MongoSessionStore
from session_store_mongo.client import hosts_in_url
from session_store_protocol import SessionKey, SessionStoreEntry
from session_store_protocol.errors import SessionStoreError

__all__ = ["SoakResult", "run_soak"]

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_ATTEMPTS = 3
"""Attempts per batch, as the SDK's transcript mirror makes them."""


@dataclass(frozen=True)
class SoakResult:
    """What a soak did and whether every transcript came back complete and in order."""

    sessions: int
    appends: int
    entries: int
    errors: int
    p50_ms: float
    p99_ms: float
    seconds: float
    complete: bool


def transcript_batch(session_id: str, first: int, size: int) -> list[SessionStoreEntry]:
    """Entries ``first .. first+size-1`` of a realistic transcript, each with its own uuid.

    User entries carry ``lastPrompt``, a field the summary keeps the last of, so that a
    lost or misordered fold shows in the summary (the fault tests use this too).
    """
    batch: list[Any] = []  # SessionStoreEntry cannot describe the opaque fields
    for n in range(first, first + size):
        role = "user" if n % 2 == 0 else "assistant"
        entry: dict[str, Any] = {
            "type": role,
            "uuid": f"{session_id}-{n:06d}",
            "parentUuid": f"{session_id}-{n - 1:06d}" if n else None,
            "sessionId": session_id,
            "timestamp": f"2026-11-20T09:{n // 3600 % 60:02d}:{n // 60 % 60:02d}.{n % 1000:03d}Z",
            "cwd": "/home/dev/acme-webapp",
            "message": {"role": role, "content": f"message {n}: fix the login form on Safari"},
        }
        if role == "user":
            entry["lastPrompt"] = entry["message"]["content"]
        batch.append(entry)
    return batch


def _in_order(loaded: list[SessionStoreEntry] | None) -> bool:
    """Whether a transcript read mid-soak is a gap-free prefix of its writer's entries."""
    numbers = [int(str(entry["uuid"]).rsplit("-", 1)[1]) for entry in loaded or []]
    return numbers == list(range(len(numbers)))


async def run_soak(
    url: str,
    *,
    sessions: int = 50,
    appends: int = 200,
    readers: int = 4,
    max_seconds: float = 60,
) -> SoakResult:
    """Run ``sessions`` concurrent writers of ``appends`` batches each, plus ``readers``.

    Args:
        url: A MongoDB URL on this machine (loopback only).
        sessions: Concurrent writers, one session each.
        appends: Batches (of one to three entries) each writer appends.
        readers: Tasks loading random sessions while the writers run.
        max_seconds: Writers stop early after this long.

    Returns:
        Counts, append latency percentiles, wall time, and whether every transcript holds
        exactly its acknowledged entries, in order.

    Raises:
        ValueError: ``url`` names a host other than this machine.
    """
    hosts = hosts_in_url(url).split(",")
    if not all(host.rsplit(":", 1)[0] in _LOOPBACK for host in hosts):
        raise ValueError(f"the soak runs against loopback servers only, not {hosts}")
    database = f"soak_{uuid.uuid4().hex[:12]}"
    store = MongoSessionStore(url=url, database=database)
    keys: list[SessionKey] = [
        {"project_key": "soak", "session_id": f"session-{n:04d}"} for n in range(sessions)
    ]
    written: dict[str, int] = {key["session_id"]: 0 for key in keys}
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    rng = random.Random(0)

    async def write(key: SessionKey) -> None:
        nonlocal errors
        session = key["session_id"]
        for _ in range(appends):
            if time.perf_counter() > deadline:
                return
            batch = transcript_batch(session, written[session], rng.randint(1, 3))
            for attempt in range(_ATTEMPTS):
                began = time.perf_counter()
                try:
                    await store.append(key, batch)
                except SessionStoreError:
                    errors += 1
                    if attempt == _ATTEMPTS - 1:
                        return  # this writer's transcript ends here; the check still holds
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                written[session] += len(batch)
                break

    async def read(writers_done: asyncio.Event) -> None:
        nonlocal errors
        while not writers_done.is_set():
            try:
                loaded = await store.load(rng.choice(keys))
            except SessionStoreError:
                errors += 1
                continue
            if not _in_order(loaded):
                errors += 1

    try:
        await store.connect()
        writers_done = asyncio.Event()
        reading = [asyncio.create_task(read(writers_done)) for _ in range(readers)]
        await asyncio.gather(*(write(key) for key in keys))
        writers_done.set()
        await asyncio.gather(*reading)
        seconds = time.perf_counter() - started
        complete = True
        for key in keys:
            loaded = await store.load(key)
            expected = written[key["session_id"]]
            complete &= _in_order(loaded) and len(loaded or []) == expected
    finally:
        await store.close()
        client: AsyncMongoClient[Any] = AsyncMongoClient(url)
        await client.drop_database(database)
        await client.close()
    ordered = sorted(latencies) or [0.0]
    return SoakResult(
        sessions=sessions,
        appends=len(latencies),
        entries=sum(written.values()),
        errors=errors,
        p50_ms=statistics.median(ordered),
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        seconds=seconds,
        complete=complete,
    )


def main() -> int:
    """Run a soak against ``MONGO_URL`` and print its result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=60)
    args = parser.parse_args()
    url = os.environ.get("MONGO_URL")
    if not url:
        parser.error("MONGO_URL is unset; run under `python -m devtools.secantus run --`")
    result = asyncio.run(
        run_soak(
            url,
            sessions=args.sessions,
            appends=args.appends,
            readers=args.readers,
            max_seconds=args.max_seconds,
        )
    )
    print(result)
    return 0 if result.complete and not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
