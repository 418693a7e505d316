"""Shared fixtures: the store tiers every contract test runs over, and the live server.

The live tier needs a MongoDB-wire server: ``MONGO_URL`` (any MongoDB, or the SecantusDB that
``make test`` starts). Without one, live tests fail under CI and are skipped loudly elsewhere.
``SECANTUSD`` names the SecantusDB executable, for tests that start servers of their own
(faults, restarts, auth, TLS).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from session_store_mongo import MongoSessionStore
from session_store_protocol import InMemorySessionStore, SessionStore
from tests.support import IN_CI, MONGO_URL, StoreFactory, encryption_settings, unique_name

STORE_TIERS = [
    "memory",
    "mongo-mongomock",
    pytest.param("mongo-live", marks=pytest.mark.live),
    pytest.param("mongo-motor", marks=pytest.mark.live),
    pytest.param("mongo-encrypted", marks=pytest.mark.live),
]
"""Every store and tier the contract runs over; adding a tier is one line here."""

_skipped_live: list[str] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("live") is None or MONGO_URL:
        return
    if IN_CI:
        pytest.fail("live tier: MONGO_URL is unset under CI; run the suite with `make test`")
    _skipped_live.append(item.nodeid)
    pytest.skip("live tier: no server (MONGO_URL unset); `make test` starts one")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped_live:
        terminalreporter.section("LIVE TIER SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(_skipped_live)} live tests did not run: no MongoDB server. "
            "Run `make test` (starts SecantusDB) or set MONGO_URL.",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def mongo_url() -> str:
    """The live server's URL (the test is marked ``live``, so it exists here)."""
    if not MONGO_URL:
        pytest.skip("live tier: MONGO_URL unset")
    return MONGO_URL


@pytest.fixture(scope="session")
def secantusd() -> Path:
    """The SecantusDB executable, for tests that start servers of their own."""
    path = os.environ.get("SECANTUSD")
    if path and Path(path).exists():
        return Path(path)
    if IN_CI:
        pytest.fail("SECANTUSD is unset under CI; run the suite with `make test`")
    pytest.skip("SECANTUSD unset: tests that start their own server need `make test`")


@pytest.fixture(scope="session")
async def live_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    """One PyMongo async client for the session, for tests that inspect the database."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    yield client
    await client.close()


@pytest.fixture
async def live_store(mongo_url: str) -> AsyncIterator[MongoSessionStore]:
    """A Mongo store on the live server, in a database of its own, dropped afterwards."""
    database = unique_name("live")
    store = MongoSessionStore(url=mongo_url, database=database)
    yield store
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    await client.drop_database(database)
    await client.close()
    await store.close()


@pytest.fixture
def mongomock_store() -> MongoSessionStore:
    """A Mongo store on mongomock-motor (the Motor code path, in process)."""
    from mongomock_motor import AsyncMongoMockClient

    return MongoSessionStore(client=AsyncMongoMockClient(), database=unique_name("mock"))


class _Tier:
    """Hands out fresh stores of one tier and cleans all of them up afterwards."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self.stores: list[MongoSessionStore] = []
        self.clients: list[Any] = []
        self.databases: list[str] = []

    def make(self) -> SessionStore:
        if self.tier == "memory":
            return InMemorySessionStore()
        database = unique_name(self.tier.replace("-", "_"))
        if self.tier == "mongo-mongomock":
            from mongomock_motor import AsyncMongoMockClient

            store = MongoSessionStore(client=AsyncMongoMockClient(), database=database)
        elif self.tier == "mongo-live":
            assert MONGO_URL
            store = MongoSessionStore(url=MONGO_URL, database=database)
        elif self.tier == "mongo-encrypted":
            assert MONGO_URL
            store = MongoSessionStore(
                url=MONGO_URL, database=database, encryption=encryption_settings(database)
            )
        elif self.tier == "mongo-motor":
            from motor.motor_asyncio import AsyncIOMotorClient

            assert MONGO_URL
            motor_client: Any = AsyncIOMotorClient(MONGO_URL)
            self.clients.append(motor_client)
            store = MongoSessionStore(client=motor_client, database=database)
        else:  # pragma: no cover - a typo in STORE_TIERS
            raise ValueError(self.tier)
        self.stores.append(store)
        self.databases.append(database)
        return store

    async def cleanup(self) -> None:
        for store in self.stores:
            await store.close()
        if self.tier in ("mongo-live", "mongo-motor", "mongo-encrypted") and MONGO_URL:
            client: AsyncMongoClient[Any] = AsyncMongoClient(MONGO_URL)
            for database in self.databases:
                await client.drop_database(database)
            await client.close()
        for motor_client in self.clients:
            motor_client.close()


@pytest.fixture(params=STORE_TIERS)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """A factory of fresh, empty stores of one tier (parametrised over all tiers)."""
    tier = _Tier(request.param)
    yield tier.make
    await tier.cleanup()


@pytest.fixture
def restore_env() -> Iterator[None]:
    """Put ``os.environ`` back as it was after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
