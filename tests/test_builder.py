"""The Mongo builder and the entry-point plugin: shared client, wire options, allow-lists."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from session_store_mongo import DEFAULT_DATABASE, EncryptionSettings, mongo_session_store_builder
from session_store_mongo.plugin import register_session_stores, settings_from_environment
from session_store_protocol import (
    InvalidStoreOptionsError,
    SessionKey,
    SessionStore,
    StoreAuthenticationError,
    StoreClosedError,
    StoreRegistry,
)
from tests.support import REPO_ROOT, unique_name

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
NOWHERE = "mongodb://127.0.0.1:9/"
"""A URL nothing listens on: building a store connects to nothing."""


def _entries(n: int) -> list[Any]:
    return [{"type": "user", "uuid": f"e{i}", "n": i} for i in range(n)]


def _environment_builder() -> Any:
    """A fresh instance of the plugin's builder (the registered one reads the environment once)."""
    registered: dict[str, Any] = {}
    register_session_stores(register=registered.__setitem__)
    return type(registered["mongo"])()


def test_builder_shares_one_client_across_stores() -> None:
    """A thousand stores built by one builder use one client: one connection pool."""
    builder = mongo_session_store_builder({"url": NOWHERE, "allowed_database_prefix": "tenant_"})
    stores = [builder({"database": f"tenant_{i % 7}"}) for i in range(1000)]
    assert len({id(store.client) for store in stores}) == 1
    assert {store.database for store in stores} == {f"tenant_{i}" for i in range(7)}


async def test_builder_stores_scrub_the_password_from_driver_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store built by the builder scrubs the URL's password from any driver message."""

    async def echoing(*args: Any, **kwargs: Any) -> None:
        raise OperationFailure("authentication failed for pw-SECRET-2", code=18)

    monkeypatch.setattr(AsyncDatabase, "command", echoing)
    builder = mongo_session_store_builder({"url": "mongodb://app:pw-SECRET-2@127.0.0.1:9/"})
    try:
        with pytest.raises(StoreAuthenticationError) as caught:
            await builder(None).connect()
        assert "127.0.0.1:9" in str(caught.value)
        assert "pw-SECRET-2" not in str(caught.value)
    finally:
        await builder.aclose()


@pytest.mark.parametrize(
    "options",
    [
        {"url": "mongodb://evil/"},
        {"client_options": {"tls": False}},
        {"database": {"$ne": ""}},
        {"database": "admin"},
        {"database": "a.b"},
        {"database": "x" * 64},
        {"database": ""},
        {"collection_prefix": "../x"},
        {"collection_prefix": {"$ne": ""}},
        {"create_indexes": False},
        {"max_entry_bytes": 1},
        {"surprise": 1},
    ],
)
def test_builder_refuses_unsafe_wire_options(options: dict[str, Any]) -> None:
    """The wire may set only a valid database and collection prefix, nothing else."""
    builder = mongo_session_store_builder(
        {"url": NOWHERE, "allowed_databases": ["other"], "allowed_collection_prefixes": ["a_"]}
    )
    with pytest.raises(InvalidStoreOptionsError):
        builder(options)


def test_wire_database_with_a_surrogate_is_refused_typed() -> None:
    """A lone UTF-16 surrogate in a wire database name is a typed error, not UnicodeEncodeError."""
    builder = mongo_session_store_builder({"url": NOWHERE, "allowed_database_prefix": "tenant_"})
    with pytest.raises(InvalidStoreOptionsError, match="UTF-16 surrogate"):
        builder({"database": "tenant_\ud83d"})


def test_without_allow_list_the_wire_keeps_the_configured_database() -> None:
    """No allow-list: the wire may repeat the configured database and prefix, never change them."""
    builder = mongo_session_store_builder({"url": NOWHERE, "database": "agents"})
    assert builder(None).database == "agents"
    assert builder({"database": "agents"}).database == "agents"
    assert builder({"collection_prefix": "session_store_"}).collection_prefix == "session_store_"
    with pytest.raises(InvalidStoreOptionsError, match="'webshop' is not allowed"):
        builder({"database": "webshop"})
    with pytest.raises(InvalidStoreOptionsError, match="collection_prefix '' is not allowed"):
        builder({"collection_prefix": ""})


def test_builder_allow_list() -> None:
    """With an allow-list, wire databases must be listed or carry the allowed prefix."""
    builder = mongo_session_store_builder(
        {
            "url": NOWHERE,
            "allowed_databases": ["shared"],
            "allowed_database_prefix": "tenant_",
        }
    )
    assert builder({"database": "shared"}).database == "shared"
    assert builder({"database": "tenant_acme"}).database == "tenant_acme"
    assert builder(None).database == DEFAULT_DATABASE
    with pytest.raises(InvalidStoreOptionsError, match="not allowed"):
        builder({"database": "other"})


def test_collection_prefix_allow_list() -> None:
    """Wire collection prefixes must be the configured one or listed in the allow-list."""
    builder = mongo_session_store_builder(
        {"url": NOWHERE, "collection_prefix": "app_", "allowed_collection_prefixes": ["b_", ""]}
    )
    assert builder(None).collection_prefix == "app_"
    assert builder({"collection_prefix": "b_"}).collection_prefix == "b_"
    assert builder({"collection_prefix": ""}).collection_prefix == ""
    with pytest.raises(InvalidStoreOptionsError, match="'c_' is not allowed"):
        builder({"collection_prefix": "c_"})


@pytest.mark.parametrize(
    "settings",
    [
        {"uri": "mongodb://h"},
        {"allowed_databases": "tenant_a"},
        {"allowed_databases": ["admin"]},
        {"allowed_collection_prefixes": ["../"]},
        {"allowed_database_prefix": ""},
    ],
)
def test_builder_refuses_bad_server_settings(settings: dict[str, Any]) -> None:
    """Server-side settings are checked too: a typo or a bad list is an error, not ignored."""
    with pytest.raises(InvalidStoreOptionsError):
        mongo_session_store_builder({"url": NOWHERE, **settings})


def test_environment_gives_the_allow_lists() -> None:
    """The plugin's settings come from MONGO_* variables; lists are comma-separated."""
    settings = settings_from_environment(
        {
            "MONGO_URL": NOWHERE,
            "MONGO_DATABASE": "agents",
            "MONGO_COLLECTION_PREFIX": "",
            "MONGO_ALLOWED_DATABASES": "tenant_a, tenant_b,",
            "MONGO_ALLOWED_DATABASE_PREFIX": "team_",
            "MONGO_ALLOWED_COLLECTION_PREFIXES": "x_",
        }
    )
    assert settings == {
        "url": NOWHERE,
        "database": "agents",
        "collection_prefix": "",
        "allowed_databases": ["tenant_a", "tenant_b"],
        "allowed_database_prefix": "team_",
        "allowed_collection_prefixes": ["x_"],
    }
    assert settings_from_environment({"MONGO_URL": NOWHERE}) == {"url": NOWHERE}


def test_plugin_reads_encryption_settings_from_a_file(tmp_path: Path) -> None:
    """MONGO_ENCRYPTION_CONFIG names a JSON file of encryption settings, read server-side."""
    config = tmp_path / "encryption.json"
    config.write_text(
        '{"kms_providers": {"local": {"key": "%s"}}, "key_scope": "session"}' % ("A" * 128),
        encoding="utf-8",
    )
    environ = {"MONGO_URL": NOWHERE, "MONGO_ENCRYPTION_CONFIG": str(config)}
    encryption = settings_from_environment(environ)["encryption"]
    assert isinstance(encryption, EncryptionSettings)
    assert (encryption.kms_provider, encryption.key_scope) == ("local", "session")


def test_plugin_without_url_says_how_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kind ``mongo`` with no MONGO_URL and no configured builder is a clear error."""
    monkeypatch.delenv("MONGO_URL", raising=False)
    with pytest.raises(InvalidStoreOptionsError, match="MONGO_URL"):
        _environment_builder()(None)


def test_importing_the_plugin_connects_to_nothing() -> None:
    """Importing the plugin and building a store open no connection (lazy until first use)."""
    code = (
        "import os, socket\n"
        f"os.environ['MONGO_URL'] = {NOWHERE!r}\n"
        "calls = []\n"
        "real = socket.socket.connect\n"
        "socket.socket.connect = lambda self, *a: calls.append(a) or real(self, *a)\n"
        "from session_store_protocol import StoreRegistry\n"
        "store = StoreRegistry().build({'kind': 'mongo'})\n"
        "print(type(store).__name__, len(calls))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["MongoSessionStore", "0"]


@pytest.mark.live
async def test_plugin_wire_database_needs_the_allow_list(
    mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured by MONGO_URL alone, the plugin refuses a wire database; the allow-list admits it.

    The regression of issue 9: a client sending ``{"database": "webshop"}`` made the store
    create its indexes in another application's database.
    """
    tenant = unique_name("tenant")
    config = {"kind": "mongo", "options": {"database": tenant}}
    monkeypatch.setenv("MONGO_URL", mongo_url)
    monkeypatch.delenv("MONGO_ALLOWED_DATABASES", raising=False)
    monkeypatch.delenv("MONGO_ALLOWED_DATABASE_PREFIX", raising=False)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    refusing, admitting = _environment_builder(), _environment_builder()
    try:
        registry = StoreRegistry()
        registry.register("mongo", refusing, replace=True)
        with pytest.raises(InvalidStoreOptionsError, match=f"'{tenant}' is not allowed"):
            registry.build(config)
        assert tenant not in await client.list_database_names()

        monkeypatch.setenv("MONGO_ALLOWED_DATABASES", f"other,{tenant}")
        registry.register("mongo", admitting, replace=True)
        store: SessionStore = registry.build(config)
        await store.append(KEY, _entries(2))
        assert await store.load(KEY) == _entries(2)
        assert tenant in await client.list_database_names()
    finally:
        await client.drop_database(tenant)
        await client.close()
        await refusing.aclose()
        await admitting.aclose()


@pytest.mark.live
async def test_registry_builds_a_working_mongo_store(mongo_url: str) -> None:
    """A harness registers the builder and gets a working store from a wire config."""
    registry = StoreRegistry()
    builder = mongo_session_store_builder({"url": mongo_url, "allowed_database_prefix": "t_"})
    registry.register("mongo", builder, replace=True)
    database = unique_name("t")
    store = registry.build({"kind": "mongo", "options": {"database": database}})
    try:
        await store.append(KEY, _entries(2))
        assert await store.load(KEY) == _entries(2)
    finally:
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        await client.drop_database(database)
        await client.close()
        await builder.aclose()


async def test_store_of_a_closed_builder_is_closed() -> None:
    """After ``builder.aclose()`` its stores raise StoreClosedError, as after ``close()``."""
    builder = mongo_session_store_builder({"url": "mongodb://127.0.0.1:9/"})
    store = builder(None)
    await builder.aclose()
    with pytest.raises(StoreClosedError):
        await store.load(KEY)
    with pytest.raises(StoreClosedError):
        await store.append(KEY, _entries(1))


LOOP_JOB = """
import asyncio, gc, os, sys, warnings
from session_store_mongo import mongo_session_store_builder

warnings.simplefilter("error", ResourceWarning)  # an unclosed client fails the run
defaults = {"url": sys.argv[1], "database": sys.argv[2]}
if sys.argv[3] == "encrypted":  # each loop's client then has a keyring of its own
    defaults["encryption"] = {
        "kms_providers": {"local": {"key": os.urandom(96)}},
        "key_vault_namespace": sys.argv[2] + ".__keyVault",
    }
builder = mongo_session_store_builder(defaults)
key = {"project_key": "proj", "session_id": "loops"}
shared = builder(None)  # one store object, used by every job

async def job(n):
    fresh = builder(None)
    await fresh.append(key, [{"type": "user", "uuid": f"job{n}"}])
    return await shared.load(key)

for n in range(3):
    loaded = asyncio.run(job(n))  # a harness that runs each job in a loop of its own
print(",".join(entry["uuid"] for entry in loaded))
asyncio.run(builder.aclose())
gc.collect()
"""


@pytest.mark.live
@pytest.mark.parametrize("kind", ["plain", "encrypted"])
async def test_builder_stores_work_in_one_event_loop_after_another(
    mongo_url: str, live_client: Any, kind: str
) -> None:
    """``asyncio.run`` per job: each loop gets its own client, closed when the loop ends."""
    database = unique_name("loops")
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-X", "dev", "-c", LOOP_JOB, mongo_url, database, kind],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["job0,job1,job2"]
        assert "Unclosed" not in result.stderr
        assert "ResourceWarning" not in result.stderr
    finally:
        await live_client.drop_database(database)
