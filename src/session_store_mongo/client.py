"""The MongoDB client a store talks through, and what errors may say about it.

Usage::

    from session_store_mongo.client import Connection

    connection = Connection.from_url("mongodb://app:pw@db1/?tls=true", {"appname": "x"})
    with connection.translate_errors("load"):      # driver errors -> typed, host named
        await connection.client["db"]["c"].find_one({})
    await connection.aclose()                      # closes the client it created

    borrowed = Connection.of_client(client)        # an injected client: named, never closed

A URL gets our defaults (``DEFAULT_CLIENT_OPTIONS``) unless the URL sets the same option (keyword
arguments would override the URL), then ``client_options`` on top, and the driver metadata that
names this library in the server's logs. ``hosts`` is what messages say about the server;
``secrets`` are scrubbed from every driver message by their literal value, so a password the
driver echoes in any form never reaches an error or a log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo.driver_info import DriverInfo
from pymongo.errors import OperationFailure, PyMongoError

from session_store_protocol.errors import (
    InvalidStoreOptionsError,
    StoreAuthenticationError,
    StoreUnavailableError,
)

from .driver import maybe_await, pymongo_client
from .redact import password_of_url, redact_text

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "ClientFacts",
    "Connection",
    "client_facts",
    "hosts_in_url",
]

log = logging.getLogger("session_store_mongo")

DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {
    # The SDK gives an append 60 s; fail well inside that, leaving room for an election.
    "serverSelectionTimeoutMS": 15_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 30_000,
    "retryWrites": True,
    "retryReads": True,
}
_AUTHENTICATION_CODES = (13, 18)  # Unauthorized, AuthenticationFailed


def hosts_in_url(url: str) -> str:
    """Return the host list of a MongoDB URL, without scheme, credentials or options."""
    rest = url.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return re.split(r"[/?]", rest, maxsplit=1)[0] or "localhost"


def _distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("session-store-mongo")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _driver_info() -> DriverInfo:
    info: DriverInfo = DriverInfo("session-store-mongo", _distribution_version())
    return info


def _defaults_not_in_url(url: str) -> dict[str, Any]:
    """Our client defaults, minus those the URL sets (keyword arguments would override it)."""
    query = urlsplit(url).query
    in_url = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    return {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in in_url}


def _hosts_of_client(client: Any) -> str:
    """Describe an injected client's hosts for error messages (never its credentials)."""
    try:
        seeds = pymongo_client(client).topology_description.server_descriptions()
        return ",".join(f"{host}:{port}" for host, port in seeds) or "MongoDB"
    except Exception:  # mongomock and other stand-ins
        return type(client).__name__


def _append_driver_info(client: Any) -> None:
    """Tell the server, in its logs, that this library talks through the injected client."""
    append = getattr(pymongo_client(client), "append_metadata", None)
    if callable(append):
        try:
            append(_driver_info())
        except Exception as exc:  # metadata is a courtesy; never fail a store on it
            log.debug("could not append driver metadata: %s", exc)


@dataclass(eq=False)
class Connection:
    """A client, the hosts messages name, the secrets they never show, and who closes it."""

    client: Any
    hosts: str
    secrets: tuple[str, ...] = ()
    owned: bool = False
    """Whether ``aclose()`` closes the client (only one this module created)."""
    closed: bool = False

    @classmethod
    def from_url(cls, url: str, client_options: Mapping[str, Any] | None = None) -> Connection:
        """Create a client for ``url`` (not connected yet); ``aclose()`` closes it.

        Raises:
            InvalidStoreOptionsError: The driver refuses the URL or an option; the message
                names the hosts, never the password.
        """
        from pymongo import AsyncMongoClient

        password = password_of_url(url)
        secrets = (password,) if password else ()
        hosts = hosts_in_url(url)
        options = {**_defaults_not_in_url(url), **(client_options or {})}
        try:
            client = AsyncMongoClient(url, driver=_driver_info(), **options)
        except (PyMongoError, TypeError, ValueError) as exc:
            raise InvalidStoreOptionsError(
                f"cannot create a MongoDB client for {hosts}: {redact_text(str(exc), secrets)}"
            ) from None
        return cls(client, hosts, secrets, owned=True)

    @classmethod
    def of_client(cls, client: Any) -> Connection:
        """Borrow an injected PyMongo async or Motor client; it is never closed here."""
        _append_driver_info(client)
        return cls(client, _hosts_of_client(client))

    def describe(self, exc: BaseException) -> str:
        """One line about a driver error, fit for messages and logs: no secret, no topology."""
        # The driver appends its whole topology description; the host is named already.
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return redact_text(first_line.split(", Topology Description:")[0], self.secrets)

    @contextlib.contextmanager
    def translate_errors(self, operation: str) -> Iterator[None]:
        """Turn driver errors raised inside into typed errors naming the operation and host.

        Raises:
            StoreAuthenticationError: The server refused the credentials or the permission.
            StoreUnavailableError: Any other driver error.
        """
        try:
            yield
        except PyMongoError as exc:
            text = f"{operation} on {self.hosts} failed: {type(exc).__name__}: {self.describe(exc)}"
            if isinstance(exc, OperationFailure) and exc.code in _AUTHENTICATION_CODES:
                raise StoreAuthenticationError(text) from None
            raise StoreUnavailableError(text) from None

    async def aclose(self) -> None:
        """Close the client if this connection created it; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.owned:
            await maybe_await(self.client.close())


@dataclass
class ClientFacts:
    """What one client has learned about its server, shared by every store on that client."""

    indexed: set[tuple[str, str]] = field(default_factory=set)
    """The ``(database, collection_prefix)`` pairs whose indexes were ensured through it."""
    owned: set[tuple[str, str]] = field(default_factory=set)
    """The ``(database, collection_prefix)`` pairs whose collections passed the ownership check."""
    max_bson: int | None = None
    """The server's document size limit, once asked."""


_FACTS: dict[int, ClientFacts] = {}


def client_facts(client: Any) -> ClientFacts:
    """The facts learned through ``client``, keyed by its identity.

    Not by equality: PyMongo clients to the same hosts compare equal, yet each must ensure
    indexes for itself (one may be connected as another user, to another deployment's data).
    """
    key = id(client)
    facts = _FACTS.get(key)
    if facts is None:
        facts = _FACTS[key] = ClientFacts()
        # Forget the facts with the client, before its id can be reused.
        weakref.finalize(client, _FACTS.pop, key, None)
    return facts
