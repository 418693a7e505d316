"""Retention: prune sessions that have been idle for N days, on a schedule.

Run it against any MongoDB (``--once`` prunes once and exits; without it, it prunes every
``--every`` seconds until Ctrl-C)::

    MONGO_URL=mongodb://localhost:27017 python examples/retention.py --days 30 --once

To have something to prune, it first writes two sessions, then backdates one of them with
``set_mtime`` (the store's way to keep a transcript's original time), as if nobody had touched
it for ``--days + 1`` days. ``prune_inactive`` deletes whole idle sessions (main and subagent
transcripts); it never expires single entries, which would truncate a live transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey

PROJECT_KEY = "-home-dev-acme-webapp"
IDLE_SESSION: SessionKey = {"project_key": PROJECT_KEY, "session_id": "idle-session"}
ACTIVE_SESSION: SessionKey = {"project_key": PROJECT_KEY, "session_id": "active-session"}


async def write_sessions(store: MongoSessionStore, idle_for: timedelta) -> None:
    """Write an active session and an idle one (with a subagent transcript), then backdate it."""
    prompt: Any = {"type": "user", "uuid": "u1", "message": "Summarize the open issues"}
    for key in (IDLE_SESSION, ACTIVE_SESSION):
        await store.append(key, [prompt])
    idle_subagent: SessionKey = {**IDLE_SESSION, "subpath": "subagents/agent-1"}
    await store.append(idle_subagent, [prompt])
    # A demo shortcut: real sessions become idle by not being written to.
    backdated = datetime.now(timezone.utc) - idle_for - timedelta(days=1)
    for key in (IDLE_SESSION, idle_subagent):
        await store.set_mtime(key, backdated)


async def prune_on_schedule(
    store: MongoSessionStore, idle_for: timedelta, every: float, once: bool
) -> None:
    """Prune sessions idle for longer than ``idle_for``, every ``every`` seconds."""
    while True:
        pruned = await store.prune_inactive(idle_for)
        names = [session["session_id"] for session in pruned]
        print(f"pruned {len(pruned)} session(s) idle for more than {idle_for.days} days: {names}")
        if once:
            return
        await asyncio.sleep(every)


async def run(database: str, days: int, every: float, once: bool) -> None:
    url = os.environ["MONGO_URL"]
    idle_for = timedelta(days=days)
    async with MongoSessionStore.from_url(url, database=database) as store:
        await write_sessions(store, idle_for)
        before = sorted(s["session_id"] for s in await store.list_sessions(PROJECT_KEY))
        print(f"sessions before: {before}")
        await prune_on_schedule(store, idle_for, every, once)
        after = sorted(s["session_id"] for s in await store.list_sessions(PROJECT_KEY))
        print(f"sessions after: {after}")
        left = await store.list_subkeys(IDLE_SESSION)
        print(f"subagent transcripts left in the idle session: {left}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="retention_example")
    parser.add_argument("--days", type=int, default=30, help="idle time before a session goes")
    parser.add_argument("--every", type=float, default=3600.0, help="seconds between prunes")
    parser.add_argument("--once", action="store_true", help="prune once and exit")
    args = parser.parse_args(argv)
    asyncio.run(run(args.database, args.days, args.every, args.once))
    return 0


if __name__ == "__main__":
    sys.exit(main())
