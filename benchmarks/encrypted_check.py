"""Whether a project is encrypted: the check before and after its partial indexes, side by side.

Usage (a server of your own, or a throw-away SecantusDB)::

    python -m devtools.secantus run -- python -m benchmarks.encrypted_check
    python -m benchmarks.encrypted_check --url mongodb://... --sessions 1000 10000 --repeats 7

A store without encryption settings asks ``sealer.is_encrypted`` before it creates a
transcript (once per project in each ``append_new``). Before the partial indexes
``session_sealed`` and ``session_forgotten`` it sent one ``find_one`` with an ``$or`` of
``$exists`` on the two marks, which only ``project_key`` could bound: it read every session
document of the project. For each size, one project of that many session documents, beside a
few of another, encrypted project, in three states: clear (the common case, nothing found), the
last transcript's summary sealed, and every summary sealed. In each state the query before
(on a copy of the collection with the indexes the store had then) and ``is_encrypted`` (on one
with the store's indexes now) take turns, and the table shows the median of each and whether
both gave the same answer. A timing script, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from bson import Binary
from pymongo import AsyncMongoClient

from session_store_mongo.layout import ENCRYPTION_MARKS, Collections
from session_store_mongo.sealer import is_encrypted

__all__ = ["main", "measure"]

_PROJECT = "bench"
_OTHER = "other"
_FILL_BATCH = 5_000
_SEALED = Binary(b"\x00" * 240, 6)
"""A sealed summary's size, more or less (the encrypted fold of a short session)."""
_STATES = ("clear", "last sealed", "all sealed")


async def _before(sessions: Any, project_key: str) -> bool:
    """The check as the store sent it before the partial indexes (the baseline measured)."""
    exists = {"$exists": True}
    found = await sessions.find_one(
        {"project_key": project_key, "$or": [{"summary_sealed": exists}, {"forgotten": exists}]},
        {"_id": 1},
    )
    return found is not None


def _session(project_key: str, n: int) -> dict[str, Any]:
    """A main transcript's document as the store leaves it: settled, a clear summary."""
    now = datetime.now(timezone.utc)
    return {
        "project_key": project_key,
        "session_id": f"s{n:07}",
        "subpath": "",
        "seq": 20,
        "settled": 20,
        "count": 20,
        "bytes": 8_000,
        "mtime": now,
        "created": now,
        "summary": {"first_prompt": "hello", "turns": 10},
        "summary_seq": 20,
        "summary_version": 1,
        "summary_at": now,
    }


async def _fill(collections: Collections, sessions: int) -> None:
    """The project's clear transcripts, and a few of another project, sealed and forgotten."""
    await collections.ensure_indexes()
    target = collections.sessions
    for start in range(0, sessions, _FILL_BATCH):
        end = min(start + _FILL_BATCH, sessions)
        await target.insert_many([_session(_PROJECT, n) for n in range(start, end)])
    others = [_session(_OTHER, n) for n in range(10)]
    for doc in others:
        del doc["summary"]
        doc.update(summary_sealed=_SEALED, forgotten=datetime.now(timezone.utc))
    await target.insert_many(others)


async def _seal(collections: Collections, state: str, sessions: int) -> None:
    """Put the project in ``state``: the last summary sealed, or every one."""
    only = {} if state == "all sealed" else {"session_id": f"s{sessions - 1:07}"}
    await collections.sessions.update_many(
        {"project_key": _PROJECT, **only},
        {"$set": {"summary_sealed": _SEALED}, "$unset": {"summary": ""}},
    )


async def _timed(
    check: Callable[[Any, str], Awaitable[bool]], sessions: Any, into: list[float]
) -> bool:
    """``check``'s answer for the project; its time (ms) appended to ``into``."""
    started = time.perf_counter()
    answer = await check(sessions, _PROJECT)
    into.append((time.perf_counter() - started) * 1000)
    return answer


async def measure(url: str, sizes: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    """Time both checks at each size and state; one row per pair, medians in milliseconds."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    database = f"bench_encrypted_check_{os.getpid()}"
    rows: list[dict[str, Any]] = []
    try:
        for sessions in sizes:
            before = Collections.of(client, database, f"before{sessions}_")
            after = Collections.of(client, database, f"after{sessions}_")
            for collections in (before, after):
                await _fill(collections, sessions)
            for name in ENCRYPTION_MARKS:  # the indexes the store had before them
                await before.sessions.drop_index(name)
            for state in _STATES:
                if state != "clear":
                    for collections in (before, after):
                        await _seal(collections, state, sessions)
                times: dict[str, list[float]] = {"before": [], "after": []}
                answers = set()
                for _ in range(repeats):
                    answers.add(await _timed(_before, before.sessions, times["before"]))
                    answers.add(await _timed(is_encrypted, after.sessions, times["after"]))
                rows.append(
                    {
                        "sessions": sessions,
                        "state": state,
                        "before": statistics.median(times["before"]),
                        "after": statistics.median(times["after"]),
                        "same": answers == {state != "clear"},
                    }
                )
    finally:
        await client.drop_database(database)
        await client.close()
    return rows


def _table(rows: Sequence[dict[str, Any]], repeats: int) -> str:
    lines = [
        f"### is_encrypted, before and after its partial indexes (median of {repeats})",
        "",
        "| sessions in the project | project | before (ms) | after (ms) | after/before | correct |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = row["after"] / row["before"] if row["before"] else float("nan")
        lines.append(
            f"| {row['sessions']:,} | {row['state']} | {row['before']:.2f} | {row['after']:.2f} "
            f"| {ratio:.3f} | {'yes' if row['same'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("MONGO_URL"), help="default: $MONGO_URL")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no server: pass --url or set MONGO_URL")
    rows = asyncio.run(measure(args.url, args.sessions, args.repeats))
    print(_table(rows, args.repeats))
    return 0 if all(row["same"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
