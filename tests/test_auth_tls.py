"""Credentials, per-database users and TLS, against SecantusDB servers started for this module.

Run with ``make test``. The auth server is provisioned the way SecantusDB asks: started once
without ``--auth`` on an on-disk storage path to run ``createUser`` (user ``app`` in ``admin``
with ``readWrite`` on ``tenant_a`` only), then restarted on the same path with ``--auth``. The
TLS server gets a throw-away CA and a certificate for 127.0.0.1/localhost from ``trustme``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from devtools.secantus import SecantusServer

from session_store_mongo import MongoSessionStore, mongo_session_store_builder
from session_store_protocol import SessionKey, StoreRegistry
from session_store_protocol.errors import (
    InvalidStoreOptionsError,
    StoreAuthenticationError,
    StoreAuthorizationError,
    StoreUnavailableError,
)
from tests.servers import running_server, server_with_users, transcript_batch
from tests.support import unique_name

pytestmark = pytest.mark.live

PASSWORD = "pw-SECRET-4f2a"
READER_PASSWORD = "pw-SECRET-reader-77e1"
WRONG_PASSWORD = "wrong-SECRET-9c1d"
KEY: SessionKey = {"project_key": "tenant", "session_id": "s"}
FAST_FAIL = {"serverSelectionTimeoutMS": 1000, "connectTimeoutMS": 1000}


@pytest.fixture(scope="module")
def auth_server(
    secantusd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecantusServer]:
    """A SecantusDB with ``--auth``: ``app`` may read and write ``tenant_a``, ``reader`` read it."""
    data = str(tmp_path_factory.mktemp("auth-data"))
    users = {
        "app": (PASSWORD, [{"role": "readWrite", "db": "tenant_a"}]),
        "reader": (READER_PASSWORD, [{"role": "read", "db": "tenant_a"}]),
    }
    with server_with_users(secantusd, data, users) as server:
        yield server


def _url(server: SecantusServer, password: str, user: str = "app") -> str:
    return (
        f"mongodb://{user}:{password}@127.0.0.1:{server.port}/"
        "?authSource=admin&directConnection=true"
    )


async def test_credentials_in_server_side_url_work(auth_server: SecantusServer) -> None:
    """A store built from wire options on a server-side URL with credentials appends and loads."""
    builder = mongo_session_store_builder(
        {"url": _url(auth_server, PASSWORD), "allowed_databases": ["tenant_a"]}
    )
    registry = StoreRegistry()
    registry.register("mongo", builder, replace=True)
    try:
        store = registry.build({"kind": "mongo", "options": {"database": "tenant_a"}})
        batch = transcript_batch("s", 0, 3)
        await store.append(KEY, batch)
        assert await store.load(KEY) == batch
    finally:
        await builder.aclose()


async def test_wrong_password_is_typed_and_never_shown(
    auth_server: SecantusServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password raises StoreAuthenticationError naming the host, never the password."""
    caplog.set_level(logging.DEBUG)
    async with MongoSessionStore(
        url=_url(auth_server, WRONG_PASSWORD), database="tenant_a", client_options=FAST_FAIL
    ) as store:
        with pytest.raises(StoreAuthenticationError) as raised:
            await store.append(KEY, transcript_batch("s", 0, 1))
    assert isinstance(raised.value, StoreUnavailableError)
    assert not isinstance(raised.value, StoreAuthorizationError)  # the credentials, not a right
    assert f"127.0.0.1:{auth_server.port}" in str(raised.value)
    assert WRONG_PASSWORD not in str(raised.value)
    assert WRONG_PASSWORD not in caplog.text
    # One clean line: what failed and why, not the server's reply with its signed cluster time.
    message = str(raised.value)
    assert message.startswith(f"append on 127.0.0.1:{auth_server.port} failed: ")
    assert "AuthenticationFailed: authentication failed" in message
    assert "\n" not in message
    for dump in ("clusterTime", "signature", "full error", "operationTime"):
        assert dump not in message


async def test_read_only_user_reads_without_creating_indexes(auth_server: SecantusServer) -> None:
    """A user with role ``read`` loads and lists; a write it may not do is typed, named."""
    project = unique_name("ro")
    key: SessionKey = {"project_key": project, "session_id": "s"}
    sub: SessionKey = {**key, "subpath": "subagents/agent-1"}
    async with MongoSessionStore(url=_url(auth_server, PASSWORD), database="tenant_a") as app:
        await app.append(key, transcript_batch("s", 0, 3))
        await app.append(sub, transcript_batch("a", 0, 2))
    async with MongoSessionStore(
        url=_url(auth_server, READER_PASSWORD, user="reader"),
        database="tenant_a",
        client_options=FAST_FAIL,
    ) as reader:
        assert await reader.load(key) == transcript_batch("s", 0, 3)
        assert [s["session_id"] for s in await reader.list_sessions(project)] == ["s"]
        assert [s["session_id"] for s in await reader.list_session_summaries(project)] == ["s"]
        assert await reader.list_subkeys({"project_key": project, "session_id": "s"}) == [
            "subagents/agent-1"
        ]
        assert await reader.size(sub) == 2
        assert (await reader.stats()).entries >= 5
        with pytest.raises(StoreAuthorizationError) as refused:
            await reader.append(key, transcript_batch("s", 3, 1))
    assert str(refused.value).startswith("append on ")
    assert (refused.value.operation, refused.value.hosts) == (
        "append",
        f"127.0.0.1:{auth_server.port}",
    )
    assert "Unauthorized" in refused.value.reason
    assert READER_PASSWORD not in str(refused.value)
    async with MongoSessionStore(
        url=_url(auth_server, READER_PASSWORD, user="reader"),
        database="tenant_b",
        client_options=FAST_FAIL,
    ) as elsewhere:
        with pytest.raises(StoreAuthenticationError, match=r"^load on .*Unauthorized"):
            await elsewhere.load(key)


async def test_wire_options_cannot_leave_the_allow_list(auth_server: SecantusServer) -> None:
    """With allowed_databases=["tenant_a"], wire option {"database": "tenant_b"} is refused."""
    builder = mongo_session_store_builder(
        {"url": _url(auth_server, PASSWORD), "allowed_databases": ["tenant_a"]}
    )
    try:
        with pytest.raises(InvalidStoreOptionsError, match="tenant_b"):
            builder({"database": "tenant_b"})
    finally:
        await builder.aclose()


async def test_server_refuses_a_database_the_user_may_not_use(auth_server: SecantusServer) -> None:
    """Without an allow-list, the server's own roles still refuse tenant_b, as a typed error."""
    async with MongoSessionStore(
        url=_url(auth_server, PASSWORD), database="tenant_b", client_options=FAST_FAIL
    ) as store:
        with pytest.raises(StoreAuthenticationError, match="tenant_b"):
            await store.append(KEY, transcript_batch("s", 0, 1))


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A throw-away certificate authority and its PEM file."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture(scope="module")
def tls_server(
    secantusd: Path, tls_ca: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecantusServer]:
    """A SecantusDB that speaks only TLS, with a certificate for 127.0.0.1 and localhost."""
    ca, ca_path = tls_ca
    pem = tmp_path_factory.mktemp("tls-server") / "server.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    with running_server(
        secantusd,
        "--tls-cert-file",
        str(pem),
        "--tls-key-file",
        str(pem),
        client_options={"tls": True, "tlsCAFile": str(ca_path)},
        # SecantusDB quirk: after a failed TLS handshake, SIGTERM no longer stops it.
        stop_timeout=1,
    ) as server:
        yield server


async def test_tls_store_appends_and_loads(
    tls_server: SecantusServer, tls_ca: tuple[trustme.CA, Path]
) -> None:
    """A store whose server-side client options trust the CA appends and loads over TLS."""
    options: dict[str, Any] = {"tls": True, "tlsCAFile": str(tls_ca[1])}
    async with MongoSessionStore(url=tls_server.url, client_options=options) as store:
        batch = transcript_batch("s", 0, 3)
        await store.append(KEY, batch)
        assert await store.load(KEY) == batch


@pytest.mark.parametrize(
    "options",
    [FAST_FAIL, {**FAST_FAIL, "tls": True}],
    ids=["plain", "tls-untrusted-ca"],
)
async def test_connection_without_trusted_tls_fails(
    tls_server: SecantusServer, options: dict[str, Any]
) -> None:
    """A plain connection, or TLS without trusting the CA, raises StoreUnavailableError."""
    async with MongoSessionStore(url=tls_server.url, client_options=options) as store:
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{tls_server.port}"):
            await store.connect()
