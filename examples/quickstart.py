"""Quick start: ``MONGO_URL=mongodb://localhost:27017 python examples/quickstart.py``."""

import asyncio
import os
from typing import Any

from session_store_mongo import MongoSessionStore
from session_store_protocol import SessionKey


async def main() -> None:
    database = os.environ.get("MONGO_DATABASE", "quickstart")
    async with MongoSessionStore.from_url(os.environ["MONGO_URL"], database=database) as store:
        key: SessionKey = {"project_key": "my-project", "session_id": "session-1"}
        entries: list[Any] = [
            {"type": "user", "uuid": "u1", "message": {"role": "user", "content": "Hello"}},
            {"type": "assistant", "uuid": "a1", "message": {"role": "assistant", "content": "Hi"}},
        ]
        await store.append(key, entries)
        await store.append(key, entries)  # a retried batch: same uuids, nothing duplicated
        print("loaded:", await store.load(key))
        print("sessions:", await store.list_sessions("my-project"))


asyncio.run(main())
