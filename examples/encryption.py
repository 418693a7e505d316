"""Encryption at rest: write a transcript encrypted, look at what the database holds, forget it.

Run it against any MongoDB (``pip install 'session-store-mongo[encryption]'``)::

    MONGO_URL=mongodb://localhost:27017 python examples/encryption.py

The master key here is a fresh local one (libmongocrypt's ``local`` provider takes 96 bytes),
kept only in this process; a real deployment takes it from a KMS (``aws``, ``azure``, ``gcp``,
``kmip``) or at least from a secret store, never from code. The key vault lives in the example's
database, so dropping it leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from session_store_mongo import EncryptionSettings, MongoSessionStore
from session_store_protocol import KeyDestroyedError, SessionKey

PROJECT_KEY = "-home-dev-acme-webapp"
SESSION: SessionKey = {"project_key": PROJECT_KEY, "session_id": "payroll-review"}


async def run(database: str) -> None:
    settings = EncryptionSettings(
        kms_providers={"local": {"key": os.urandom(96)}},
        key_vault_namespace=f"{database}.__keyVault",
    )
    url = os.environ["MONGO_URL"]
    async with MongoSessionStore.from_url(url, database=database, encryption=settings) as store:
        prompt: Any = {"type": "user", "uuid": "u1", "message": "Salaries: alice 120k, bob 95k"}
        await store.append(SESSION, [prompt])
        print(f"loaded: {await store.load(SESSION)}")
        stored = await store.client[database]["session_store_entries"].find_one(
            {"session_id": SESSION["session_id"]}
        )
        print(f"the database holds fields: {sorted(stored)}")
        print(f"readable 'alice' in the document: {b'alice' in bytes(stored['sealed'])}")
        forgotten = await store.forget(PROJECT_KEY)
        print(f"forget destroyed {forgotten.keys} data key; {forgotten.transcripts} transcript(s)")
        try:
            await store.load(SESSION)
        except KeyDestroyedError as exc:
            print(f"load after forget: KeyDestroyedError: {exc}")
        print(f"sessions listed after forget: {await store.list_sessions(PROJECT_KEY)}")
        await store.client.drop_database(database)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="encryption_example")
    args = parser.parse_args(argv)
    asyncio.run(run(args.database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
