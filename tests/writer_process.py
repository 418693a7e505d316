"""A transcript writer in an OS process of its own, for tests that follow it from another.

Usage::

    python -m tests.writer_process URL DATABASE SESSION --batches 20 --batch-size 3 [--pause 0.01]

Appends ``transcript_batch`` batches to ``{"project_key": "follow", "session_id": SESSION}``
as the SDK's mirror does (retrying a failed batch), then prints ``appended N`` and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey
from tests.servers import append_like_sdk, transcript_batch

PROJECT = "follow"


async def write(
    url: str, database: str, session: str, batches: int, size: int, pause: float
) -> int:
    """Append ``batches`` batches of ``size`` entries; return how many entries were appended."""
    key: SessionKey = {"project_key": PROJECT, "session_id": session}
    async with MongoSessionStore(url=url, database=database) as store:
        for number in range(batches):
            await append_like_sdk(store, key, transcript_batch(session, number * size, size))
            await asyncio.sleep(pause)
    return batches * size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("database")
    parser.add_argument("session")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args()
    written = asyncio.run(
        write(args.url, args.database, args.session, args.batches, args.batch_size, args.pause)
    )
    print(f"appended {written}")


if __name__ == "__main__":
    main()
