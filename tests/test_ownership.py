"""The store writes only into collections it owns: foreign data is refused, never touched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient, MongoClient
from typer.testing import CliRunner

from session_store_mongo import MongoSessionStore
from session_store_mongo.cli.app import app
from session_store_protocol import ForeignCollectionError, SessionKey
from tests.support import MONGO_URL, predecessor_document, store_collection, unique_name

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
UPDATED = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
STORE_CALLS: dict[str, Callable[[MongoSessionStore], Awaitable[object]]] = {
    "connect": lambda store: store.connect(),
    "ensure_indexes": lambda store: store.ensure_indexes(),
    "append": lambda store: store.append(KEY, [{"type": "user", "uuid": "u1"}]),
    "load": lambda store: store.load(KEY),
    "size": lambda store: store.size(KEY),
    "list_sessions": lambda store: store.list_sessions("proj"),
    "list_session_summaries": lambda store: store.list_session_summaries("proj"),
    "list_subkeys": lambda store: store.list_subkeys({"project_key": "proj", "session_id": "s"}),
    "delete": lambda store: store.delete(KEY),
    "set_mtime": lambda store: store.set_mtime(KEY, UPDATED),
    "stats": lambda store: store.stats(),
    "prune_inactive": lambda store: store.prune_inactive(timedelta(0)),
}


class Tier:
    """A client on one tier (mongomock in process, or the live server) and a fresh database."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.database = unique_name("own")
        if name == "mongomock":
            self.client: Any = AsyncMongoMockClient()
        else:
            assert MONGO_URL
            self.client = AsyncMongoClient(MONGO_URL)
        self.stores: list[MongoSessionStore] = []

    def store(self, **options: Any) -> MongoSessionStore:
        store = MongoSessionStore(client=self.client, database=self.database, **options)
        self.stores.append(store)
        return store

    def collection(self, name: str) -> Any:
        return self.client[self.database][name]

    async def snapshot(self, name: str) -> tuple[list[Any], list[str]]:
        """A collection's documents and index names, to show nothing was touched."""
        docs = await self.collection(name).find({}).sort("_id", 1).to_list(None)
        return docs, sorted(await self.collection(name).index_information())

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
        await self.client.drop_database(self.database)
        if self.name == "live":
            await self.client.close()


@pytest.fixture(params=["mongomock", pytest.param("live", marks=pytest.mark.live)])
async def tier(request: pytest.FixtureRequest) -> AsyncIterator[Tier]:
    """Each test runs in process and against the live server."""
    tier = Tier(request.param)
    yield tier
    await tier.close()


async def _fill_predecessor(tier: Tier, sessions: int) -> None:
    await tier.collection("sessions").insert_many(
        [
            predecessor_document(f"s{n}", "proj", [{"type": "user", "uuid": f"u{n}"}], UPDATED)
            for n in range(sessions)
        ]
    )


@pytest.mark.parametrize("sessions", [1, 2])
@pytest.mark.parametrize("call", list(STORE_CALLS))
async def test_predecessor_collection_is_refused_by_every_call(
    tier: Tier, sessions: int, call: str
) -> None:
    """A store pointed at the predecessor's collection raises the typed error naming migrate.

    The regression of issue 9: with 2+ such documents every call failed with a misleading
    DuplicateKeyError; with one, the store indexed and wrote into the predecessor's collection.
    """
    await _fill_predecessor(tier, sessions)
    before = await tier.snapshot("sessions")
    store = tier.store(collection_prefix="")
    with pytest.raises(ForeignCollectionError) as raised:
        await STORE_CALLS[call](store)
    message = str(raised.value)
    assert f"{tier.database}.sessions" in message
    assert "@open-gitagent/session-store-mongo 0.2" in message
    assert "session-store-mongo migrate" in message
    assert await tier.snapshot("sessions") == before


async def test_the_predecessor_keeps_working_beside_the_store(tier: Tier) -> None:
    """With default names the store leaves the predecessor's collection alone, unindexed.

    So its next upsert (keyed by session id) still succeeds while both run side by side.
    """
    await _fill_predecessor(tier, 2)
    store = tier.store()
    await store.append(KEY, [{"type": "user", "uuid": "u1"}])
    assert await store.load(KEY) == [{"type": "user", "uuid": "u1"}]
    assert sorted(await tier.collection("sessions").index_information()) == ["_id_"]
    predecessor = tier.collection("sessions")
    for session in ("s0", "s9"):
        await predecessor.update_one(
            {"_id": session},
            {"$push": {"entries": {"type": "user"}}, "$set": {"projectKey": "proj"}},
            upsert=True,
        )
    assert await predecessor.count_documents({}) == 3


async def test_another_applications_sessions_keep_accepting_inserts(tier: Tier) -> None:
    """A web framework's ``sessions`` is refused without being indexed; its inserts keep working.

    The error names the collection and its fields but never a value (a web session id is a
    secret).
    """
    web = tier.collection("sessions")
    await web.insert_one({"_id": "secret-token-1", "data": "cart=3", "expires": UPDATED})
    store = tier.store(collection_prefix="")
    with pytest.raises(ForeignCollectionError, match="did not write") as raised:
        await store.append(KEY, [{"type": "user", "uuid": "u1"}])
    assert f"{tier.database}.sessions" in str(raised.value)
    assert "_id, data, expires" in str(raised.value)
    assert "secret-token-1" not in str(raised.value)
    await web.insert_one({"_id": "secret-token-2", "data": "cart=1", "expires": UPDATED})
    await web.insert_one({"_id": "secret-token-3", "data": "", "expires": UPDATED})
    assert sorted(await web.index_information()) == ["_id_"]
    assert await store_collection(tier.client, store, "entries").count_documents({}) == 0
    default_store = tier.store()
    await default_store.append(KEY, [{"type": "user", "uuid": "u1"}])
    await web.insert_one({"_id": "secret-token-4", "data": "", "expires": UPDATED})
    assert await web.count_documents({}) == 4


async def test_own_and_empty_collections_pass(tier: Tier) -> None:
    """An existing empty collection, and the store's own data, indexed or not, pass the check."""
    await tier.client[tier.database].create_collection("session_store_sessions")
    store = tier.store(create_indexes=False)
    await store.append(KEY, [{"type": "user", "uuid": "u1"}])
    await store.ensure_indexes()  # checks the unindexed collections by their documents
    await store.ensure_indexes()  # and the indexed ones through the key index
    assert await store.load(KEY) == [{"type": "user", "uuid": "u1"}]


@pytest.mark.parametrize("indexed", [True, False])
async def test_foreign_document_beside_the_stores_own_is_found(tier: Tier, indexed: bool) -> None:
    """A document not of the store's shape, slipped in beside its own, is found."""
    store = tier.store(create_indexes=indexed)
    await store.append(KEY, [{"type": "user", "uuid": "u1"}])
    intruder = {"note": "not an entry"} if indexed else {**KEY, "subpath": "", "note": "no seq"}
    await store_collection(tier.client, store, "entries").insert_one(intruder)
    with pytest.raises(ForeignCollectionError, match="note"):
        await store.ensure_indexes()


@pytest.mark.live
def test_cli_reports_a_foreign_collection_in_one_line(mongo_url: str) -> None:
    """CLI ``stats`` on the predecessor's collection exits 1 with the typed error, no traceback."""
    database = unique_name("own_cli")
    client: MongoClient[Any] = MongoClient(mongo_url)
    client[database]["sessions"].insert_one(
        predecessor_document("s1", "proj", [{"type": "user"}], UPDATED)
    )
    try:
        result = CliRunner().invoke(
            app,
            ["--url", mongo_url, "--database", database, "--collection-prefix", "", "stats"],
            env={"COLUMNS": "300"},
        )
    finally:
        client.drop_database(database)
        client.close()
    assert result.exit_code == 1, result.output
    assert "session-store-mongo migrate" in result.output
    assert "Traceback" not in result.output
    assert "KeyError" not in result.output
