"""Live follow: watch a session from one process while another process writes it.

Run it against a replica set (change streams; any MongoDB started with ``--replSet``, Atlas, or
the test server ``make test`` starts); a standalone server works too, by polling::

    MONGO_URL=mongodb://localhost:27017 python examples/live_follow.py

The script starts a second Python process that appends a short conversation, a frame at a
time, as the Claude Agent SDK does with ``session_store_flush="eager"``, then a subagent's
transcript. Meanwhile this process follows the session with ``store.follow(...)`` and prints
each entry as it arrives, with its position (``seq``) and transcript. Halfway it closes the
follower and opens another one after the position the first one reached
(``after=follower.position``): nothing is missed or shown twice. The writer ends by deleting
the session, which ends the follow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from session_store_mongo import MongoSessionStore, StoredEntry
from session_store_protocol import SessionKey

SESSION: SessionKey = {"project_key": "-home-dev-acme-webapp", "session_id": "live-session"}
SUBAGENT: SessionKey = {**SESSION, "subpath": "subagents/agent-7f3a"}
CONVERSATION = [
    ("user", "The login button does nothing on Safari."),
    ("assistant", "Let me read LoginForm.tsx."),
    ("assistant", "The handler calls preventDefault twice; fixing it."),
    ("user", "Thanks! Add a test too."),
]


def frame(number: int, role: str, text: str) -> Any:
    return {"type": role, "uuid": f"frame-{number}", "message": {"role": role, "content": text}}


async def write(url: str, database: str) -> None:
    """The other process: append frame by frame, a subagent's note, then delete the session."""
    async with MongoSessionStore.from_url(url, database=database) as store:
        for number, (role, text) in enumerate(CONVERSATION):
            await store.append(SESSION, [frame(number, role, text)])
            await asyncio.sleep(0.2)
        await store.append(SUBAGENT, [frame(99, "assistant", "Searched 14 files for onClick.")])
        await asyncio.sleep(0.5)
        await store.delete(SESSION)


def show(item: StoredEntry) -> str:
    """One line per entry: its transcript, position, role and text."""
    entry: Any = item.entry
    return f"[{item.subpath or 'main'} #{item.seq}] {entry['type']}: {entry['message']['content']}"


async def follow(url: str, database: str) -> None:
    """This process: follow the session, stop after two frames, resume where it stopped."""
    writer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--write", "--database", database
    )
    async with MongoSessionStore.from_url(url, database=database) as store:
        async with store.follow(SESSION, include_subkeys=True) as viewer:
            async for item in viewer:
                print(show(item))
                if item.seq == 2:
                    break  # a viewer that closes: its position is all it needs to come back
        position = viewer.position
        print(f"viewer closed at {position}; reopening after it")
        async with store.follow(SESSION, after=position, include_subkeys=True) as viewer:
            async for item in viewer:
                print(show(item))
        print(f"follow ended: the session was deleted = {viewer.deleted}")
    await writer.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("MONGO_DATABASE", "live_follow"))
    parser.add_argument("--write", action="store_true", help="be the writing process")
    args = parser.parse_args(argv)
    url = os.environ.get("MONGO_URL")
    if not url:
        print("set MONGO_URL (or run the suite with `make test`)", file=sys.stderr)
        return 2
    asyncio.run(write(url, args.database) if args.write else follow(url, args.database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
