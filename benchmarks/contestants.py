"""What the benchmark compares, each behind the same small interface, in a database of its own.

Usage::

    from benchmarks.contestants import FloorContestant, SeedContestant, StoreContestant

    contestants = [
        StoreContestant("store (pymongo)", pymongo_client, "bench_store"),
        FloorContestant("floor (bare driver)", pymongo_client, "bench_floor"),
        SeedContestant("seed design", pymongo_client, "bench_seed"),
    ]
    for contestant in contestants:
        await contestant.setup()
        await contestant.prefill(key, entries)       # quickly, not timed
        await contestant.append(key, batch)          # timed by the caller
        loaded = await contestant.load(key)
        await contestant.drop()                      # drops its database
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from benchmarks.seed_design import SeedDesignStore
from bson import ObjectId
from pymongo import ASCENDING, IndexModel

from session_store_mongo import EncryptionSettings, MongoSessionStore
from session_store_mongo.driver import maybe_await
from session_store_mongo.layout import key_fields
from session_store_protocol.types import SessionKey, SessionStoreEntry

__all__ = [
    "PREFILL_BATCH",
    "Contestant",
    "FloorContestant",
    "SeedContestant",
    "StoreContestant",
]

PREFILL_BATCH = 500


class Contestant(ABC):
    """One way of storing transcripts, in its own database on the shared server."""

    def __init__(self, name: str, client: Any, database: str) -> None:
        self.name = name
        self.client = client
        self.database = database

    @abstractmethod
    async def setup(self) -> None:
        """Prepare the database before the first (timed) operation."""

    async def prefill(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Fill a session before measuring; by default, appends of ``PREFILL_BATCH`` entries."""
        for start in range(0, len(entries), PREFILL_BATCH):
            await self.append(key, entries[start : start + PREFILL_BATCH])

    @abstractmethod
    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Append a batch to the session."""

    @abstractmethod
    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return the session's entries in order, or ``None``."""

    async def drop(self) -> None:
        """Drop the contestant's database."""
        await maybe_await(self.client.drop_database(self.database))


class StoreContestant(Contestant):
    """``MongoSessionStore`` on an injected client (PyMongo async or Motor).

    With ``subpath``, every key names a subagent transcript: appends skip the summary step,
    which shows what the main transcript's third round trip (the summary write) costs. With
    ``encryption``, the store encrypts at rest (keep its key vault in ``database``, so that
    ``drop`` removes it too).
    """

    def __init__(
        self,
        name: str,
        client: Any,
        database: str,
        *,
        subpath: str | None = None,
        encryption: EncryptionSettings | None = None,
    ) -> None:
        super().__init__(name, client, database)
        self.store = MongoSessionStore(client=client, database=database, encryption=encryption)
        self.subpath = subpath

    def _key(self, key: SessionKey) -> SessionKey:
        return key if self.subpath is None else {**key, "subpath": self.subpath}

    async def setup(self) -> None:
        await self.store.connect()  # creates the indexes now rather than in the first append

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.store.append(self._key(key), entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.store.load(self._key(key))

    async def drop(self) -> None:
        await self.store.close()
        await super().drop()


class FloorContestant(Contestant):
    """The bare driver doing the same work with no store logic: the floor the store is held to.

    It writes the store's entry documents (key fields, ``seq``, ``dedupe``, ``entry``) under the
    same two unique indexes, so the server does the same work; what it skips is validation,
    encoding, the sequence reservation and the summary. An append is one ``insert_many`` with
    sequence numbers counted in this process (correct for one writer only); a load is one
    ``find`` sorted by ``seq`` returning whole documents.
    """

    def __init__(self, name: str, client: Any, database: str) -> None:
        super().__init__(name, client, database)
        self._entries = client[database]["entries"]
        self._seq: dict[tuple[str, ...], int] = {}

    async def setup(self) -> None:
        key_fields = [("project_key", ASCENDING), ("session_id", ASCENDING), ("subpath", ASCENDING)]
        await self._entries.create_indexes(
            [
                IndexModel([*key_fields, ("seq", ASCENDING)], unique=True),
                IndexModel([*key_fields, ("dedupe", ASCENDING)], unique=True),
            ]
        )

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        fields = key_fields(key)
        counter = tuple(fields.values())
        start = self._seq.get(counter, 0)
        self._seq[counter] = start + len(entries)
        await self.insert(
            [
                {
                    **fields,
                    "seq": start + n,
                    "dedupe": entry.get("uuid") or ObjectId(),
                    "entry": entry,
                }
                for n, entry in enumerate(entries, 1)
            ]
        )

    async def insert(self, documents: list[dict[str, Any]]) -> None:
        """Insert entry documents as they are: one ``insert_many``."""
        await self._entries.insert_many(documents, ordered=False)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """One ``find`` on the key sorted by ``seq``, whole documents (no projection)."""
        cursor = self._entries.find(key_fields(key)).sort("seq", ASCENDING)
        entries: list[SessionStoreEntry] = [document["entry"] async for document in cursor]
        return entries or None


class SeedContestant(Contestant):
    """The seed's design (``benchmarks/seed_design.py``): one document per session."""

    def __init__(self, name: str, client: Any, database: str) -> None:
        super().__init__(name, client, database)
        self.seed = SeedDesignStore(client[database]["sessions"])

    async def setup(self) -> None:
        """Nothing to do: the seed looks sessions up by ``_id``, which is always indexed."""

    async def prefill(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.seed.put(key, entries)  # the document, built directly

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        await self.seed.append(key, entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        return await self.seed.load(key)
