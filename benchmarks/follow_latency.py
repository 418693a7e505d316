"""Follow latency: from an append to its delivery by a follower, change streams against polling.

Usage::

    from benchmarks.follow_latency import bench_follow

    results = await bench_follow(url, appends=100)   # one FollowResult per way of following

One writer appends one entry at a time to a main transcript, at uneven intervals (so that
nothing lines up with a polling period), while a follower on another client follows it. For
each entry the writer notes when its ``append`` was called and when it returned (acknowledged),
the follower when the entry reached it. The entry is visible to followers once inserted, before
the append's last round trip (the summary) returns, so a change stream often delivers it
*before* the writer has its acknowledgement: latencies after the acknowledgement can be
negative. Each way of following runs in a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey

__all__ = ["FollowResult", "bench_follow"]

POLL_INTERVALS = (0.5, 0.1)
"""The polling intervals measured: the default, and a busier one."""
_KEY: SessionKey = {"project_key": "bench", "session_id": "followed"}
_PAUSE = (0.02, 0.08)
"""Seconds between appends: uneven, so appends fall anywhere in a polling period."""


@dataclass
class FollowResult:
    """One way of following, and how long entries took to reach the follower."""

    mode: str
    appends: int
    after_ack: list[float] = field(default_factory=list)
    """Seconds from each append's acknowledgement to its delivery (negative: before it)."""
    after_call: list[float] = field(default_factory=list)
    """Seconds from each append's call to its delivery."""
    delivered: int = 0
    in_order: bool = False

    @property
    def correct(self) -> bool:
        """Every entry delivered once, in the order appended."""
        return self.delivered == self.appends and self.in_order


def percentile_ms(samples: Sequence[float], percent: int) -> float:
    """The ``percent``-th percentile of samples in seconds, in milliseconds."""
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1] * 1000


async def _follow_once(url: str, mode: str, appends: int, poll_interval: float) -> FollowResult:
    database = f"bench_follow_{uuid.uuid4().hex[:8]}"
    result = FollowResult(mode, appends)
    rng = random.Random(mode)
    called: dict[str, float] = {}
    acked: dict[str, float] = {}
    arrived: dict[str, float] = {}
    order: list[str] = []
    async with (
        MongoSessionStore(url=url, database=database) as writer,
        MongoSessionStore(url=url, database=database) as reader,
    ):
        await writer.append(_KEY, [{"type": "user", "uuid": "warm-up"}])  # indexes, document
        follower = reader.follow(
            _KEY, after="end", poll_interval=poll_interval, change_streams=mode == "change stream"
        )
        async with follower:

            async def follow() -> None:
                async for item in follower:
                    name = str(item.entry["uuid"])
                    arrived[name] = time.perf_counter()
                    order.append(name)
                    if len(order) == appends:
                        return

            following = asyncio.create_task(follow())
            for number in range(appends):
                name = f"entry-{number}"
                await asyncio.sleep(rng.uniform(*_PAUSE))
                called[name] = time.perf_counter()
                await writer.append(_KEY, [{"type": "user", "uuid": name}])
                acked[name] = time.perf_counter()
            await asyncio.wait_for(following, 30)
        await writer.client.drop_database(database)
    result.after_ack = [arrived[name] - acked[name] for name in acked]
    result.after_call = [arrived[name] - called[name] for name in called]
    result.delivered = len(order)
    result.in_order = order == list(called)
    return result


async def bench_follow(url: str, *, appends: int) -> list[FollowResult]:
    """Follow ``appends`` single-entry appends through a change stream, then by polling."""
    results = [await _follow_once(url, "change stream", appends, POLL_INTERVALS[0])]
    for interval in POLL_INTERVALS:
        results.append(await _follow_once(url, f"polling every {interval:g} s", appends, interval))
    return results
