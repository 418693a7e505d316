"""Encryption at rest: what is sealed, per-tenant keys, forget, rotate-keys and their errors.

The contract kit and the SDK's conformance suite run on an encrypted store too (tier
``mongo-encrypted`` in ``conftest.py``); this module checks what only encryption promises.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient

from session_store_mongo import (
    DEFAULT_COLLECTION_PREFIX,
    EncryptionSettings,
    MongoSessionStore,
    mongo_session_store_builder,
)
from session_store_protocol import (
    EncryptionKeyError,
    EncryptionUnavailableError,
    InvalidStoreOptionsError,
    KeyDestroyedError,
    SessionKey,
)
from tests.support import MASTER_KEY, encryption_settings, unique_name

MARKER = "PLAINTEXT-MARKER-3f9a"
PROJECT = "acme"
KEY: SessionKey = {"project_key": PROJECT, "session_id": "s1"}
SUB: SessionKey = {**KEY, "subpath": "subagents/agent-1"}
VAULT = "__keyVault"


def entries(tag: str, count: int = 3) -> list[Any]:
    """User messages that carry the marker in their uuid and their text."""
    return [
        {
            "type": "user",
            "uuid": f"{tag}-{n}-{MARKER}",
            "message": {"role": "user", "content": f"{tag} {n}: {MARKER}"},
        }
        for n in range(count)
    ]


def key_material(master_key: bytes) -> list[str]:
    """Every form in which a master key could leak into a message."""
    return [base64.b64encode(master_key).decode(), master_key.hex(), repr(master_key)[2:40]]


@pytest.fixture
async def database(mongo_url: str) -> AsyncIterator[str]:
    """A database of the test's own (the key vault lives in it), dropped afterwards."""
    name = unique_name("enc")
    yield name
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    await client.drop_database(name)
    await client.close()


def encrypted(url: str, database: str, **settings: Any) -> MongoSessionStore:
    """An encrypted store on ``database`` under the tests' master key (or ``master_key=``)."""
    return MongoSessionStore(
        url=url, database=database, encryption=encryption_settings(database, **settings)
    )


async def raw_documents(client: AsyncMongoClient[Any], database: str) -> list[bytes]:
    """Every document of the store's collections, as the BSON the server holds."""
    found = []
    for name in ("entries", "sessions", "entry_chunks"):
        async for doc in client[database][DEFAULT_COLLECTION_PREFIX + name].find():
            found.append(bson.encode(doc))
    return found


async def vault_keys(client: AsyncMongoClient[Any], database: str) -> list[dict[str, Any]]:
    return [doc async for doc in client[database][VAULT].find()]


# -- what is sealed ----------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.sdk
async def test_raw_documents_hold_no_plaintext(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """Entries, uuids, escaped keys, chunks and summaries are ciphertext; key fields stay clear."""
    awkward = {"type": "x", "uuid": f"esc-{MARKER}", "$set": {"a.b": MARKER}, "big": 2**70}
    no_uuid = {"type": "system", "text": MARKER}
    huge = {"type": "tool_result", "uuid": f"huge-{MARKER}", "content": "x" * (17 << 20) + MARKER}
    main = [*entries("main"), awkward, no_uuid, huge]
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, main)
        await store.append(SUB, entries("sub"))
        assert await store.load(KEY) == main
        assert await store.load(SUB) == entries("sub")
        summaries = await store.list_session_summaries(PROJECT)
    assert MARKER in json.dumps(summaries)  # the summary holds user text: worth sealing
    raw = await raw_documents(live_client, database)
    assert (
        await live_client[database][DEFAULT_COLLECTION_PREFIX + "entries"].count_documents({})
        == len(main) + 3
    )
    assert (
        await live_client[database][DEFAULT_COLLECTION_PREFIX + "entry_chunks"].count_documents({})
        == 3
    )  # 8 MB parts
    assert not [doc[:200] for doc in raw if MARKER.encode() in doc]
    sessions = [
        doc async for doc in live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"].find()
    ]
    main_session = next(doc for doc in sessions if doc["subpath"] == "")
    assert "summary" not in main_session
    assert main_session["summary_sealed"].subtype == 6
    stored = await live_client[database][DEFAULT_COLLECTION_PREFIX + "entries"].find_one(
        {**KEY, "subpath": "", "seq": 1}
    )
    assert stored is not None
    assert set(stored) == {"_id", "project_key", "session_id", "subpath", "seq", "dedupe", "sealed"}


@pytest.mark.live
async def test_retried_batch_from_another_process_is_skipped(mongo_url: str, database: str) -> None:
    """Two stores (two processes' keyrings) derive the same dedupe values: a retry is skipped."""
    batch = entries("retry")
    async with encrypted(mongo_url, database) as first, encrypted(mongo_url, database) as second:
        await first.append(KEY, batch)
        await second.append(KEY, [*batch, *entries("new", 1)])
        assert await second.load(KEY) == [*batch, *entries("new", 1)]


@pytest.mark.live
async def test_first_writes_race_to_one_key_per_tenant(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """Stores racing to write a new tenant's first entries end up with one data key."""
    stores = [encrypted(mongo_url, database) for _ in range(5)]
    try:
        await asyncio.gather(
            *(
                store.append({"project_key": PROJECT, "session_id": f"s{n}"}, entries(f"w{n}"))
                for n, store in enumerate(stores)
            )
        )
    finally:
        for store in stores:
            await store.close()
    keys = await vault_keys(live_client, database)
    assert len(keys) == 1
    assert json.loads(keys[0]["keyAltNames"][0]) == [
        "session-store-mongo",
        database,
        DEFAULT_COLLECTION_PREFIX,
        PROJECT,
    ]
    async with encrypted(mongo_url, database) as reader:
        for n in range(5):
            assert await reader.load({"project_key": PROJECT, "session_id": f"s{n}"}) == entries(
                f"w{n}"
            )


@pytest.mark.live
async def test_key_vault_without_its_unique_index_is_refused(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """A key vault whose keyAltNames index is not unique cannot keep one key per tenant: refused."""
    await live_client[database][VAULT].create_index("keyAltNames", name="keyAltNames_1")
    async with encrypted(mongo_url, database) as store:
        with pytest.raises(InvalidStoreOptionsError, match="unique index on keyAltNames"):
            await store.append(KEY, entries("x"))
    assert await vault_keys(live_client, database) == []


@pytest.mark.live
async def test_plaintext_from_before_encryption_stays_readable(
    mongo_url: str, database: str
) -> None:
    """Turning encryption on reads earlier plaintext entries; a plain store refuses sealed ones."""
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        await plain.append(KEY, entries("before"))
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("after"))
        assert await store.load(KEY) == [*entries("before"), *entries("after")]
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        with pytest.raises(EncryptionKeyError, match="is encrypted"):
            await plain.load(KEY)


@pytest.mark.live
async def test_follow_opens_what_the_stream_and_the_store_carry(
    mongo_url: str, database: str
) -> None:
    """A follower on an encrypted store gets the stored and the live entries in clear."""
    awkward = {"type": "x", "uuid": "esc", "$set": {"a.b": MARKER}, "big": 2**70}
    async with encrypted(mongo_url, database) as reader, encrypted(mongo_url, database) as writer:
        await writer.append(KEY, entries("stored", 2))
        async with reader.follow(KEY) as follower:
            await writer.append(KEY, [*entries("live", 2), awkward])
            items: list[Any] = []
            async for item in follower:
                items.append(item.entry)
                if len(items) == 5:
                    break
    assert items == [*entries("stored", 2), *entries("live", 2), awkward]


# -- forget ------------------------------------------------------------------------------------


@pytest.mark.live
async def test_forget_makes_the_tenant_unreadable_and_says_why(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """After forget, reads and counts raise KeyDestroyedError, listings leave the tenant out."""
    other: SessionKey = {"project_key": "other", "session_id": "s1"}
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("main"))
        await store.append(SUB, entries("sub"))
        await store.append(other, entries("other"))
        done = await store.forget(PROJECT)
        assert (done.keys, done.transcripts) == (1, 2)
        for read in (store.load(KEY), store.load(SUB), store.size(KEY)):
            with pytest.raises(KeyDestroyedError, match="destroyed by forget"):
                await read
        assert await store.list_sessions(PROJECT) == []
        assert await store.list_subkeys({"project_key": PROJECT, "session_id": "s1"}) == []
        stats = await store.stats()
        assert (stats.sessions, stats.forgotten) == (2, 1)
        assert await store.load(other) == entries("other")
        assert (await store.forget(PROJECT)).keys == 0
    async with encrypted(mongo_url, database) as fresh:
        with pytest.raises(KeyDestroyedError):
            await fresh.load(KEY)
        assert await fresh.load(other) == entries("other")
    assert len(await vault_keys(live_client, database)) == 1  # other's key only


@pytest.mark.live
async def test_forget_leaves_transcripts_stored_in_clear_readable_and_says_which(
    mongo_url: str, database: str
) -> None:
    """Clear transcripts of a forgotten project are neither counted nor marked, but returned."""
    clear: SessionKey = {"project_key": PROJECT, "session_id": "s2"}
    clear_sub: SessionKey = {**clear, "subpath": "subagents/agent-2"}
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        await plain.append(clear, entries("clear"))
        await plain.append(clear_sub, entries("clear-sub"))
        async with encrypted(mongo_url, database) as store:
            await store.append(KEY, entries("main"))
            await store.append(SUB, entries("sub"))
            done = await store.forget(PROJECT)
            assert (done.keys, done.transcripts) == (1, 2)
            assert sorted(done.stored_in_clear, key=lambda k: k.get("subpath", "")) == [
                clear,
                clear_sub,
            ]
            assert [s["session_id"] for s in await store.list_sessions(PROJECT)] == ["s2"]
            assert await store.list_subkeys(clear) == ["subagents/agent-2"]
            assert (await store.stats()).forgotten == 1
        assert await plain.load(clear) == entries("clear")
        assert await plain.load(clear_sub) == entries("clear-sub")


@pytest.mark.live
async def test_store_without_settings_refuses_new_transcripts_of_an_encrypted_project(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """Creating a clear transcript there, by append or append_new, is refused: nothing written."""
    older: SessionKey = {"project_key": PROJECT, "session_id": "s0"}
    new: SessionKey = {"project_key": PROJECT, "session_id": "s2"}
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        await plain.append(older, entries("clear"))  # before the project was encrypted
        async with encrypted(mongo_url, database) as store:
            await store.append(KEY, entries("main"))
        with pytest.raises(EncryptionKeyError, match=r"project 'acme' is encrypted: .* acme/s2"):
            await plain.append(new, entries("new"))
        with pytest.raises(EncryptionKeyError, match="--encryption-config"):
            await plain.append_new([(older, entries("x")), (new, entries("new"))])
        with pytest.raises(EncryptionKeyError, match="acme/s1/subagents/agent-1"):
            await plain.append(SUB, entries("sub"))
        db = live_client[database]
        for name in ("sessions", "entries"):
            collection = db[DEFAULT_COLLECTION_PREFIX + name]
            assert await collection.count_documents({"session_id": "s2"}) == 0
            assert await collection.count_documents({"subpath": SUB["subpath"]}) == 0
        await plain.append(older, entries("more"))  # an existing transcript takes entries
        assert await plain.append_new([(older, entries("again"))]) == [None]
        assert await plain.load(older) == [*entries("clear"), *entries("more")]
        await plain.append({"project_key": "other", "session_id": "s2"}, entries("other"))


async def _only_forgotten_project(mongo_url: str, database: str, project: str) -> None:
    """A project whose one mark is ``forgotten``: a subagent transcript (no summary), forgotten."""
    async with encrypted(mongo_url, database) as store:
        await store.append({**SUB, "project_key": project}, entries("sub"))
        assert (await store.forget(project)).transcripts == 1


@pytest.mark.live
async def test_store_without_settings_refuses_a_project_whose_transcripts_are_forgotten(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """A forgotten transcript marks its project encrypted, with no sealed summary in it.

    Forget leaves the mark of what an encrypted store wrote; without that mark (a document
    from before it), the forgotten stamp alone is enough.
    """
    await _only_forgotten_project(mongo_url, database, PROJECT)
    sessions = live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"]
    assert await sessions.count_documents({"summary_sealed": {"$exists": True}}) == 0
    assert await sessions.count_documents({"encrypted": True, "forgotten": {"$exists": True}}) == 1
    await sessions.update_many({}, {"$unset": {"encrypted": ""}})
    new: SessionKey = {"project_key": PROJECT, "session_id": "s2"}
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        with pytest.raises(EncryptionKeyError, match=r"project 'acme' is encrypted: .* acme/s2"):
            await plain.append(new, entries("new"))
        with pytest.raises(EncryptionKeyError, match="acme/s2"):
            await plain.append_new([(new, entries("new"))])
    assert await sessions.count_documents({"session_id": "s2"}) == 0


async def _refused_in_clear(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any], project: str
) -> None:
    """A store without settings creates no transcript in ``project``, by either path."""
    new: SessionKey = {"project_key": project, "session_id": "s2"}
    for transactions in (True, False):  # append_new in one transaction, and step by step
        async with MongoSessionStore(
            url=mongo_url, database=database, transactions=transactions
        ) as plain:
            with pytest.raises(EncryptionKeyError, match=rf"project '{project}' is encrypted"):
                await plain.append(new, entries("new"))
            with pytest.raises(EncryptionKeyError, match=f"{project}/s2"):
                await plain.append_new([(new, entries("new"))])
    db = live_client[database]
    for name in ("sessions", "entries"):
        collection = db[DEFAULT_COLLECTION_PREFIX + name]
        assert await collection.count_documents({"project_key": project, "session_id": "s2"}) == 0


WRITES = ["append", "append_new in a transaction", "append_new step by step"]
"""The ways an encrypted store creates a transcript."""


async def _write_encrypted(mongo_url: str, database: str, way: str, key: SessionKey) -> None:
    """Create ``key``'s transcript in an encrypted store, the ``way`` named (``WRITES``)."""
    async with MongoSessionStore(
        url=mongo_url,
        database=database,
        encryption=encryption_settings(database),
        transactions=way != "append_new step by step",
    ) as store:
        if way == "append":
            await store.append(key, entries("enc"))
        else:
            assert await store.append_new([(key, entries("enc"))]) == [3]
        assert await store.load(key) == entries("enc")


@pytest.mark.live
@pytest.mark.parametrize("way", WRITES)
async def test_project_encrypted_without_the_sdk_refuses_clear_transcripts(
    mongo_url: str,
    database: str,
    live_client: AsyncMongoClient[Any],
    monkeypatch: pytest.MonkeyPatch,
    way: str,
) -> None:
    """A main transcript sealed where no summary is folded (no SDK) marks its project."""
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # a process without the SDK
    await _write_encrypted(mongo_url, database, way, KEY)
    sessions = live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"]
    assert await sessions.count_documents({"summary_sealed": {"$exists": True}}) == 0
    await _refused_in_clear(mongo_url, database, live_client, PROJECT)


@pytest.mark.live
@pytest.mark.parametrize("way", WRITES)
async def test_project_holding_only_a_subagent_transcript_refuses_clear_transcripts(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any], way: str
) -> None:
    """A sealed subagent transcript (never a summary) marks its project on its own."""
    await _write_encrypted(mongo_url, database, way, SUB)
    sessions = live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"]
    assert await sessions.count_documents({"project_key": PROJECT}) == 1
    await _refused_in_clear(mongo_url, database, live_client, PROJECT)


@pytest.mark.live
@pytest.mark.parametrize("key", [KEY, SUB], ids=["main, without the SDK", "subagent"])
async def test_store_without_settings_refuses_appends_to_an_encrypted_transcript(
    mongo_url: str,
    database: str,
    live_client: AsyncMongoClient[Any],
    monkeypatch: pytest.MonkeyPatch,
    key: SessionKey,
) -> None:
    """Entries in clear would outlive forget there: refused, numbers fenced and settled."""
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # no sealed summary either
    await _write_encrypted(mongo_url, database, "append", key)
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        with pytest.raises(EncryptionKeyError, match=r"project 'acme' is encrypted: .* acme/s1"):
            await plain.append(key, entries("clear"))
    db = live_client[database]
    stored = db[DEFAULT_COLLECTION_PREFIX + "entries"]
    assert await stored.count_documents({"entry": {"$exists": True}}) == 0
    session = await db[DEFAULT_COLLECTION_PREFIX + "sessions"].find_one({"project_key": PROJECT})
    assert session is not None
    assert (session["count"], session["seq"], session["settled"]) == (3, 6, 6)
    async with encrypted(mongo_url, database) as store:
        assert await store.load(key) == entries("enc")


@pytest.mark.live
async def test_refusal_holds_for_transcripts_stored_before_the_marks_were_indexed(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """Without the partial indexes the answer is read from the documents; opening builds them.

    The documents are as a store wrote them before the ``encrypted`` mark: a sealed summary, or
    a forgotten stamp, and no mark (a store upgraded in place needs no migration).
    """
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("main"))  # a sealed summary
    await _only_forgotten_project(mongo_url, database, "gone")
    sessions = live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"]
    await sessions.update_many({}, {"$unset": {"encrypted": ""}})
    marks = {"session_encrypted", "session_sealed", "session_forgotten"}
    for name in marks:  # as a store written before these indexes existed holds them
        await sessions.drop_index(name)
    news: list[SessionKey] = [
        {"project_key": PROJECT, "session_id": "s2"},
        {"project_key": "gone", "session_id": "s2"},
    ]
    for create_indexes in (False, True):  # a fresh client each: indexes ensured once per client
        async with MongoSessionStore(
            url=mongo_url, database=database, create_indexes=create_indexes
        ) as plain:
            for new in news:
                with pytest.raises(EncryptionKeyError, match=f"{new['project_key']}/s2"):
                    await plain.append(new, entries("new"))
        assert (marks <= set(await sessions.index_information())) is create_indexes
    assert await sessions.count_documents({"session_id": "s2"}) == 0


@pytest.mark.live
async def test_forgotten_transcript_refuses_appends_new_sessions_start_afresh(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """A new session works; appending to a forgotten transcript fails, counts untouched."""
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("old"))
        await store.forget(PROJECT)
        fresh_key: SessionKey = {"project_key": PROJECT, "session_id": "s2"}
        await store.append(fresh_key, entries("new"))  # the project's key again
        assert await store.load(fresh_key) == entries("new")
        with pytest.raises(KeyDestroyedError):  # sealed under the new key, refused once reserved
            await store.append(KEY, entries("more"))
        session = await live_client[database][DEFAULT_COLLECTION_PREFIX + "sessions"].find_one(
            {**KEY, "subpath": ""}
        )
        assert session is not None
        # Its 3 new numbers fenced and settled: nothing counted, nothing waits for the lease.
        assert (session["count"], session["seq"], session["settled"]) == (3, 6, 6)
        assert [s["session_id"] for s in await store.list_sessions(PROJECT)] == ["s2"]
        await store.delete(KEY)  # deleting the ciphertext lets the session id start again
        await store.append(KEY, entries("again"))
        assert await store.load(KEY) == entries("again")


@pytest.mark.live
async def test_refused_writes_to_a_forgotten_tenant_create_no_data_key(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """A forgotten transcript, or its session's new subagent, is refused without a fresh key."""
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("old"))
        await store.forget(PROJECT)
        with pytest.raises(KeyDestroyedError, match="destroyed by forget"):
            await store.append(KEY, entries("more"))
        with pytest.raises(KeyDestroyedError, match=r"s1 takes no new subagent transcripts"):
            await store.append(SUB, entries("sub"))
        with pytest.raises(KeyDestroyedError, match=r"s1 takes no new subagent transcripts"):
            await store.append_new([(SUB, entries("sub"))])
        assert await vault_keys(live_client, database) == []
        assert await store.list_subkeys({"project_key": PROJECT, "session_id": "s1"}) == []
        assert (await store.forget(PROJECT)).forgotten_at is not None  # still forgotten, no key


@pytest.mark.live
async def test_forget_reaches_every_session_key_and_no_other_project(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """With one key per session, forget destroys all of the project's, none of a look-alike's."""
    async with encrypted(mongo_url, database, key_scope="session") as store:
        for session in ("a", "b"):
            await store.append({"project_key": PROJECT, "session_id": session}, entries(session))
        lookalike: SessionKey = {"project_key": PROJECT + '"', "session_id": "a"}
        prefixed: SessionKey = {"project_key": PROJECT + "-2", "session_id": "a"}
        await store.append(lookalike, entries("l"))
        await store.append(prefixed, entries("p"))
        assert len(await vault_keys(live_client, database)) == 4
        assert (await store.forget(PROJECT)).keys == 2
        assert await store.load(lookalike) == entries("l")
        assert await store.load(prefixed) == entries("p")
    assert len(await vault_keys(live_client, database)) == 2


@pytest.mark.live
async def test_key_cache_bounds_how_long_another_process_still_reads(
    mongo_url: str, database: str
) -> None:
    """A process holding the key reads on for key_cache_ms after forget, then it cannot."""
    async with (
        encrypted(mongo_url, database) as forgetter,
        encrypted(mongo_url, database) as holder,
        encrypted(mongo_url, database, key_cache_ms=100) as short,
    ):
        await forgetter.append(KEY, entries("cached"))
        assert await holder.load(KEY) == entries("cached")
        assert await short.load(KEY) == entries("cached")
        await forgetter.forget(PROJECT)
        with pytest.raises(KeyDestroyedError):
            await forgetter.load(KEY)  # the forgetting process drops its cache at once
        assert await holder.load(KEY) == entries("cached")  # the documented window
        await asyncio.sleep(0.3)
        with pytest.raises(KeyDestroyedError):
            await short.load(KEY)


@pytest.mark.live
async def test_forget_and_rotate_need_an_encrypted_store(mongo_url: str, database: str) -> None:
    """A plain store has no key to destroy or rewrap: a clear options error."""
    async with MongoSessionStore(url=mongo_url, database=database) as plain:
        with pytest.raises(InvalidStoreOptionsError, match="encrypted store"):
            await plain.forget(PROJECT)
        with pytest.raises(InvalidStoreOptionsError, match="encrypted store"):
            await plain.rotate_keys()


# -- rotate-keys -------------------------------------------------------------------------------


@pytest.mark.live
async def test_rotate_keys_rewraps_without_rewriting_transcripts(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """After rotation only the new master key opens the data keys; no entry document changed."""
    new_master = os.urandom(96)
    namespace = f"{database}.{VAULT}"
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("rotate"))
    before = await raw_documents(live_client, database)
    both = EncryptionSettings(
        kms_providers={"local": {"key": MASTER_KEY}, "local:next": {"key": new_master}},
        kms_provider="local:next",
        key_vault_namespace=namespace,
    )
    async with MongoSessionStore(url=mongo_url, database=database, encryption=both) as rotating:
        assert await rotating.rotate_keys() == 1
    assert await raw_documents(live_client, database) == before
    only_new = EncryptionSettings(
        kms_providers={"local:next": {"key": new_master}}, key_vault_namespace=namespace
    )
    async with MongoSessionStore(url=mongo_url, database=database, encryption=only_new) as store:
        assert await store.load(KEY) == entries("rotate")
    async with encrypted(mongo_url, database) as old_only:
        with pytest.raises(EncryptionKeyError) as raised:
            await old_only.load(KEY)
    for secret in key_material(MASTER_KEY) + key_material(new_master):
        assert secret not in str(raised.value)


# -- bad keys and settings ---------------------------------------------------------------------


@pytest.mark.live
async def test_wrong_master_key_is_a_typed_error_without_key_material(
    mongo_url: str, database: str
) -> None:
    """Reading or writing under the wrong master key raises EncryptionKeyError, no key shown."""
    wrong = os.urandom(96)
    async with encrypted(mongo_url, database) as store:
        await store.append(KEY, entries("right"))
    async with encrypted(mongo_url, database, master_key=wrong) as store:
        with pytest.raises(EncryptionKeyError, match="master key") as on_read:
            await store.load(KEY)
        with pytest.raises(EncryptionKeyError, match="master key") as on_write:
            await store.append(KEY, entries("wrong"))
    for raised in (on_read, on_write):
        assert not isinstance(raised.value, KeyDestroyedError)
        for secret in key_material(wrong) + key_material(MASTER_KEY):
            assert secret not in str(raised.value)
    async with encrypted(mongo_url, database) as store:
        assert await store.load(KEY) == entries("right")  # nothing written under the wrong key


@pytest.mark.live
async def test_unreachable_kms_names_no_credential(mongo_url: str, database: str) -> None:
    """A KMS that cannot be reached is an EncryptionKeyError naming none of its credentials."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    settings = EncryptionSettings(
        kms_providers={"aws": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": secret}},
        master_key={"region": "us-east-1", "key": "arn:aws:kms:x", "endpoint": "127.0.0.1:1"},
        key_vault_namespace=f"{database}.{VAULT}",
    )
    async with MongoSessionStore(url=mongo_url, database=database, encryption=settings) as store:
        with pytest.raises(EncryptionKeyError) as raised:
            await store.append(KEY, entries("kms"))
    assert secret not in str(raised.value)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(raised.value)
    assert secret not in repr(settings)


@pytest.mark.parametrize(
    "providers",
    [{}, {"local": {}}, {"local": {"key": b"short"}}, {"local": {"key": "bm90IDk2IGJ5dGVz"}}],
)
def test_missing_master_key_is_a_typed_error(providers: dict[str, Any]) -> None:
    """No master key, or one libmongocrypt refuses, fails at construction, naming no key."""
    with pytest.raises(EncryptionKeyError) as raised:
        MongoSessionStore(
            url="mongodb://127.0.0.1:1",
            encryption=EncryptionSettings(kms_providers=providers),
        )
    assert "bm90IDk2IGJ5dGVz" not in str(raised.value)
    assert "short" not in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"key_vault_namespace": "novault"}, "database.collection"),
        ({"key_scope": "tenant"}, "key_scope"),
        ({"key_cache_ms": 0}, "key_cache_ms"),
        ({"kms_provider": "aws"}, "no master key for KMS provider"),
        ({"surprise": 1}, "unknown encryption settings"),
    ],
)
def test_malformed_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    """Settings are validated before anything is built."""
    with pytest.raises((InvalidStoreOptionsError, EncryptionKeyError), match=message):
        EncryptionSettings.from_mapping(
            {"kms_providers": {"local": {"key": MASTER_KEY}}, **settings}
        )


def test_remote_provider_needs_its_master_key() -> None:
    """aws, azure and gcp must be told which master key wraps the data keys."""
    with pytest.raises(InvalidStoreOptionsError, match="master_key"):
        EncryptionSettings(kms_providers={"aws": {"accessKeyId": "a", "secretAccessKey": "b"}})


def test_repr_and_unreadable_file_show_no_key(tmp_path: Any) -> None:
    """Neither repr() nor a malformed settings file echo key material."""
    settings = EncryptionSettings(kms_providers={"local": {"key": MASTER_KEY}})
    for secret in key_material(MASTER_KEY):
        assert secret not in repr(settings)
    path = tmp_path / "encryption.json"
    path.write_text('{"kms_providers": {"local": {"key": "c2VjcmV0LWtleS1tYXRlcmlhbA=="}}', "utf-8")
    with pytest.raises(InvalidStoreOptionsError, match="not valid JSON") as raised:
        EncryptionSettings.from_file(path)
    assert "c2VjcmV0" not in str(raised.value)


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pymongocrypt, an encrypted store is an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "pymongocrypt", None)
    with pytest.raises(EncryptionUnavailableError, match=r"session-store-mongo\[encryption\]"):
        MongoSessionStore(
            url="mongodb://127.0.0.1:1",
            encryption=EncryptionSettings(kms_providers={"local": {"key": MASTER_KEY}}),
        )
    assert issubclass(EncryptionUnavailableError, ImportError)


def test_encryption_needs_pymongo_async_client() -> None:
    """Motor and mongomock clients cannot carry libmongocrypt's key vault: refused clearly."""
    from mongomock_motor import AsyncMongoMockClient

    with pytest.raises(InvalidStoreOptionsError, match="AsyncMongoClient"):
        MongoSessionStore(
            client=AsyncMongoMockClient(),
            encryption=EncryptionSettings(kms_providers={"local": {"key": MASTER_KEY}}),
        )


# -- the builder: server-side only -------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        {"encryption": None},
        {"encryption": {"kms_providers": {"local": {"key": "AAAA"}}}},
        {"kms_providers": {}},
        {"key_vault_namespace": "attacker.keys"},
        {"key_scope": "session"},
    ],
)
def test_wire_cannot_touch_encryption(wire: dict[str, Any]) -> None:
    """Every encryption setting from the wire is refused; the server's settings stand."""
    builder = mongo_session_store_builder(
        {
            "url": "mongodb://127.0.0.1:1",
            "encryption": {"kms_providers": {"local": {"key": MASTER_KEY}}},
        }
    )
    with pytest.raises(InvalidStoreOptionsError, match="not accepted"):
        builder(wire)


@pytest.mark.live
async def test_builder_stores_all_encrypt_with_one_keyring(
    mongo_url: str, database: str, live_client: AsyncMongoClient[Any]
) -> None:
    """Stores built for wire databases encrypt under the server's settings, one keyring shared."""
    other = unique_name("enc")
    builder = mongo_session_store_builder(
        {
            "url": mongo_url,
            "allowed_databases": [database, other],
            "encryption": {
                "kms_providers": {"local": {"key": MASTER_KEY}},
                "key_vault_namespace": f"{database}.{VAULT}",
            },
        }
    )
    try:
        first, second = builder({"database": database}), builder({"database": other})
        assert first.encrypted
        assert second.encrypted
        keyrings = {id(store._sealer.keyring) for store in (first, second) if store._sealer}
        assert len(keyrings) == 1  # one key cache for every store on the client
        await first.append(KEY, entries("a"))
        await second.append(KEY, entries("b"))
        assert await second.load(KEY) == entries("b")
        for name in (database, other):
            assert not [
                doc for doc in await raw_documents(live_client, name) if MARKER.encode() in doc
            ]
        assert len(await vault_keys(live_client, database)) == 2  # one per database's tenant
    finally:
        await builder.aclose()
        await live_client.drop_database(other)
