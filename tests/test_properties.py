"""Property tests (Hypothesis): arbitrary JSON round-trips, arbitrary keys are refused or isolated.

Run with ``make test``; each property runs on mongomock-motor and on the live server. Hypothesis
drives synchronous test functions, so the stores live on a private event loop in a thread of
this module (created, used and closed there), apart from the suite's session loop.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from session_store_mongo import MongoSessionStore
from session_store_protocol import (
    InMemorySessionStore,
    SessionKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreError,
)
from session_store_protocol.errors import InvalidKeyError
from tests.support import unique_name

T = TypeVar("T")

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class PrivateLoop:
    """An event loop running in a thread of its own; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class Tier:
    """A client of one tier on the private loop, and the database the properties write to."""

    loop: PrivateLoop
    client: Any
    database: str

    def store(self, collection_prefix: str = "") -> MongoSessionStore:
        return MongoSessionStore(
            client=self.client, database=self.database, collection_prefix=collection_prefix
        )


@pytest.fixture(scope="module")
def private_loop() -> Iterator[PrivateLoop]:
    """The module's private event loop."""
    loop = PrivateLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module", params=["mongomock", pytest.param("live", marks=pytest.mark.live)])
def tier(request: pytest.FixtureRequest, private_loop: PrivateLoop) -> Iterator[Tier]:
    """A Mongo client on mongomock-motor or on the live server, made on the private loop."""
    database = unique_name("props")
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield Tier(private_loop, AsyncMongoMockClient(), database)
        return
    url: str = request.getfixturevalue("mongo_url")

    async def connect() -> AsyncMongoClient[Any]:
        return AsyncMongoClient(url)

    client = private_loop.run(connect())
    yield Tier(private_loop, client, database)

    async def drop() -> None:
        await client.drop_database(database)
        await client.close()

    private_loop.run(drop())


# -- arbitrary JSON --------------------------------------------------------------------------

# Text MongoDB cannot hold as is ($-prefixed or dotted keys, NUL, lone UTF-16 surrogates, which
# UTF-8 cannot encode) and text shaped like the store's escapes are drawn often on purpose.
awkward_text = st.text(
    st.characters() | st.sampled_from(["\ud83d", "\ude00", "%", "u", "$", ".", "\x00"]),
    max_size=20,
)
field_names = st.one_of(
    st.text(max_size=8),
    awkward_text,
    st.sampled_from(["$set", "a.b", "x\x00y", "%", "$", "\ud83d", "%ud83d", "%int", "%str"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | awkward_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=16,
)
entry_bodies = st.dictionaries(
    field_names.filter(lambda name: name not in ("type", "uuid")), json_values, max_size=5
)


@st.composite
def transcripts(draw: st.DrawFn) -> list[list[SessionStoreEntry]]:
    """One to three batches of entries, each with a string ``type``, some with a uuid."""
    entries: list[SessionStoreEntry] = []
    for number in range(draw(st.integers(1, 8))):
        entry: dict[str, Any] = {"type": draw(st.text(max_size=10)), **draw(entry_bodies)}
        if draw(st.booleans()):
            entry["uuid"] = f"u{number}"
        entries.append(entry)
    cuts = sorted(draw(st.lists(st.integers(0, len(entries)), max_size=2)))
    bounds = [0, *cuts, len(entries)]
    return [entries[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@PROPERTY_SETTINGS
@given(batches=transcripts())
def test_any_json_entry_round_trips(tier: Tier, batches: list[list[SessionStoreEntry]]) -> None:
    """Entries of arbitrary JSON (odd keys, huge ints, unicode) load deep-equal, in order."""
    key: SessionKey = {"project_key": "props", "session_id": unique_name("s")}

    async def round_trip() -> list[SessionStoreEntry] | None:
        store = tier.store()
        for batch in batches:
            await store.append(key, batch)
        return await store.load(key)

    assert tier.loop.run(round_trip()) == [entry for batch in batches for entry in batch]


# Values JSON cannot hold mixed in: NaN and infinities, tuples, bytes, non-string keys.
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | awkward_text | st.binary(max_size=2),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(field_names | st.integers(), children, max_size=3)
    ),
    max_leaves=10,
)


@PROPERTY_SETTINGS
@given(bodies=st.lists(st.dictionaries(field_names, any_values, max_size=3), max_size=3))
def test_both_stores_give_the_same_answer(tier: Tier, bodies: list[dict[str, Any]]) -> None:
    """Any batch is stored alike, or refused with the same error, by Mongo and memory stores."""
    key: SessionKey = {"project_key": "props", "session_id": unique_name("same")}
    batch: list[Any] = [{**body, "type": "x"} for body in bodies]

    async def outcome(store: SessionStore) -> object:
        try:
            await store.append(key, batch)
        except SessionStoreError as exc:
            return f"{type(exc).__name__}: {exc}"
        return await store.load(key)

    assert tier.loop.run(outcome(tier.store())) == tier.loop.run(outcome(InMemorySessionStore()))


# -- arbitrary keys --------------------------------------------------------------------------

# Small alphabets, so that drawn keys often collide or differ by one character.
key_texts = st.text(alphabet="ab/.\\$\x00 é\ud83d", max_size=4)
key_values = st.one_of(
    key_texts,
    key_texts,
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(key_texts, max_size=2),
    st.sampled_from([{"$ne": ""}, {"$gt": ""}, {"$regex": ".*"}]),
)
keys = st.fixed_dictionaries(
    {"project_key": key_values, "session_id": key_values}, optional={"subpath": key_values}
)


def _identity(key: dict[str, Any]) -> tuple[str, str, str | None]:
    return key["project_key"], key["session_id"], key.get("subpath")


@PROPERTY_SETTINGS
@given(drawn=st.lists(keys, min_size=1, max_size=4))
def test_any_key_is_refused_or_isolated(tier: Tier, drawn: list[dict[str, Any]]) -> None:
    """Each key is refused (InvalidKeyError, nothing written) or holds only its own entries."""

    async def write_and_read() -> None:
        store = tier.store(collection_prefix=unique_name("k"))
        accepted: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for number, key in enumerate(drawn):
            entries_before = (await store.stats()).entries
            try:
                await store.append(key, [{"type": "user", "uuid": f"k{number}"}])
            except InvalidKeyError:
                assert (await store.stats()).entries == entries_before
                with pytest.raises(InvalidKeyError):
                    await store.load(key)
                continue
            accepted.setdefault(_identity(key), key)
        for identity, key in accepted.items():
            loaded = await store.load(key)
            assert loaded is not None
            owners = {
                _identity(drawn[int(str(entry["uuid"])[1:])]) for entry in loaded if "uuid" in entry
            }
            assert owners == {identity}

    tier.loop.run(write_and_read())
