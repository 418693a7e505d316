"""The MongoDB client a store talks through, and what errors may say about it.

Usage::

    from session_store_mongo.client import Connection

    connection = Connection.from_url("mongodb://app:pw@db1/?tls=true", {"appname": "x"})
    with connection.translate_errors("load"):      # driver errors -> typed, host named
        await connection.client["db"]["c"].find_one({})   # this event loop's client
    await connection.aclose()                      # closes the clients it created

    borrowed = Connection.of_client(client)        # an injected client: named, never closed

A URL gets our defaults (``DEFAULT_CLIENT_OPTIONS``) unless the URL sets the same option (keyword
arguments would override the URL), then ``client_options`` on top, and the driver metadata that
names this library in the server's logs. ``hosts`` is what messages say about the server;
``secrets`` are scrubbed from every driver message by their literal value, so a password the
driver echoes in any form never reaches an error or a log. What the driver would warn about
the URL (an option it does not know, which it leaves unnamed) is logged as a warning on the
``session_store_mongo`` logger instead, naming the option.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo.driver_info import DriverInfo
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_preferences import ReadPreference

from session_store_protocol.errors import (
    InvalidStoreOptionsError,
    StoreAuthenticationError,
    StoreAuthorizationError,
    StoreUnavailableError,
)

from .driver import pymongo_client
from .redact import is_secret_parameter, password_of_url, redact_text

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "ClientFacts",
    "Connection",
    "client_facts",
    "hosts_in_url",
    "refused_to_user",
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
_UNAUTHORIZED = 13
_AUTHENTICATION_FAILED = 18
_URL = re.compile(r"mongodb(\+srv)?://", re.IGNORECASE)
_UNKNOWN_OPTION = "Unknown option."
"""How the driver's warning about an unknown URL option begins (it leaves the name out)."""
# How a client used outside its own event loop fails: PyMongo's async client says so; Motor
# schedules on the loop it first ran in, so it meets that loop closed or a foreign future.
_OTHER_LOOP_MESSAGES = (
    "different event loop",
    "attached to a different loop",
    "Event loop is closed",
)


def refused_to_user(exc: PyMongoError) -> bool:
    """Whether the server refused the operation to this user (it holds no privilege for it)."""
    return isinstance(exc, OperationFailure) and exc.code == _UNAUTHORIZED


def hosts_in_url(url: object) -> str:
    """Return the host list of a MongoDB URL, without scheme, credentials or options.

    Raises:
        InvalidStoreOptionsError: Not a MongoDB URL (the driver would take any other text as a
            host name and wait for it until its timeout), or no host; never shows a password.
    """
    if not isinstance(url, str) or not _URL.match(url):
        shown = redact_text(url) if isinstance(url, str) else type(url).__name__
        raise InvalidStoreOptionsError(
            f"url must be a MongoDB URL, mongodb://host[:port][,host...][/database][?options] "
            f"or mongodb+srv://host, not {shown!r}"
        )
    hosts = url.split("://", 1)[1].rsplit("@", 1)[-1]
    hosts = re.split(r"[/?]", hosts, maxsplit=1)[0]
    if not hosts:
        raise InvalidStoreOptionsError(f"url names no host: {redact_text(url)!r}")
    return hosts


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


def _name_unknown_options(messages: list[str], url: str) -> list[str]:
    """The driver's warnings about ``url``, each unknown option's named (the driver names none).

    The driver warns of unknown options in the URL's order, one each; the names are matched to
    the warnings only when they are as many. A name right after a secret parameter is left out:
    it may be the rest of that secret, cut at an ``&`` the URL did not escape.
    """
    from pymongo.common import URI_OPTIONS_VALIDATOR_MAP

    unknown: dict[str, str | None] = {}
    after_secret = False
    for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name.lower() not in URI_OPTIONS_VALIDATOR_MAP and name.lower() not in unknown:
            unknown[name.lower()] = None if after_secret else name
        after_secret = is_secret_parameter(name)
    warned = [i for i, message in enumerate(messages) if message.startswith(_UNKNOWN_OPTION)]
    named = list(messages)
    if len(warned) == len(unknown):
        for index, option in zip(warned, unknown.values(), strict=True):
            if option is not None:
                rest = messages[index].removeprefix(_UNKNOWN_OPTION)
                named[index] = f"Unknown option: {option}.{rest}"
    return named


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


class Connection:
    """A client per event loop, the hosts messages name, the secrets they never show.

    A connection made from a URL owns its clients: PyMongo binds a client to the event loop
    that first uses it, so each loop gets a client of its own (a harness may call
    ``asyncio.run`` once per job), closed when that loop shuts down (``asyncio.run`` cancels
    the loop's tasks, and a watcher task closes the client then) or by ``aclose()``.
    An injected client is used as it is, in the loop it belongs to, and never closed here.
    """

    def __init__(
        self,
        hosts: str,
        *,
        secrets: tuple[str, ...] = (),
        client: Any | None = None,
        new_client: Callable[[], Any] | None = None,
    ) -> None:
        """Use ``from_url`` or ``of_client``."""
        self.hosts = hosts
        self.secrets = secrets
        self.closed = False
        self._injected = client
        self._new_client = new_client
        self._spare = new_client() if new_client is not None else None
        """A client no loop has used yet: the first loop to ask adopts it."""
        self._watchers: dict[asyncio.AbstractEventLoop, tuple[Any, asyncio.Task[None]]] = {}

    @classmethod
    def from_url(cls, url: str, client_options: Mapping[str, Any] | None = None) -> Connection:
        """Clients for ``url`` (the first is made now, unconnected); ``aclose()`` closes them.

        Raises:
            InvalidStoreOptionsError: The URL is not a MongoDB URL, or the driver refuses it
                or an option; the message names the hosts, never the password.
        """
        from pymongo import AsyncMongoClient

        password = password_of_url(url) if isinstance(url, str) else None
        secrets = (password,) if password else ()
        hosts = hosts_in_url(url)
        options = {**_defaults_not_in_url(url), **(client_options or {})}

        def new_client() -> Any:
            # The driver warns of options it ignores through ``warnings``, which prints its own
            # source path; a log record names the hosts instead, and never the password.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                client = AsyncMongoClient(url, driver=_driver_info(), **options)
            messages = _name_unknown_options([str(warning.message) for warning in caught], url)
            for message in messages:
                log.warning("MongoDB URL for %s: %s", hosts, redact_text(message, secrets))
            return client

        try:
            return cls(hosts, secrets=secrets, new_client=new_client)
        except (PyMongoError, TypeError, ValueError) as exc:
            raise InvalidStoreOptionsError(
                f"cannot create a MongoDB client for {hosts}: {redact_text(str(exc), secrets)}"
            ) from None

    @classmethod
    def of_client(cls, client: Any) -> Connection:
        """Borrow an injected PyMongo async or Motor client; it is never closed here."""
        _append_driver_info(client)
        return cls(_hosts_of_client(client), client=client)

    @property
    def owned(self) -> bool:
        """Whether this connection created its clients (and so closes them)."""
        return self._injected is None

    @property
    def client(self) -> Any:
        """The client for the running event loop (outside a loop: the one the next loop gets)."""
        if self._injected is not None:
            return self._injected
        assert self._new_client is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            if self._spare is None:
                self._spare = self._new_client()
            return self._spare
        if loop not in self._watchers:
            client = self._spare if self._spare is not None else self._new_client()
            self._spare = None
            watcher = loop.create_task(self._close_at_shutdown(loop, client))
            self._watchers[loop] = (client, watcher)
        return self._watchers[loop][0]

    async def _close_at_shutdown(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        """Wait until cancelled (the loop shuts down, or ``aclose()``), then close ``client``."""
        try:
            await loop.create_future()
        finally:
            self._watchers.pop(loop, None)
            await _close_client(client)

    def describe(self, exc: BaseException) -> str:
        """One line about a driver error, fit for messages and logs: no secret, no reply dump."""
        if isinstance(exc, OperationFailure):
            # str() appends the server's whole reply ($clusterTime and its signature included).
            details = exc.details or {}
            reason = details.get("errmsg") or str(exc).split(", full error:")[0]
            text = f"{details.get('codeName') or 'code ' + str(exc.code)}: {reason}"
        else:
            # The driver appends its whole topology description; the host is named already.
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            text = f"{type(exc).__name__}: {first_line.split(', Topology Description:')[0]}"
        return redact_text(text, self.secrets)

    @contextlib.contextmanager
    def translate_errors(self, operation: str) -> Iterator[None]:
        """Turn driver errors raised inside into typed errors naming the operation and host.

        Raises:
            StoreAuthenticationError: The server refused the credentials.
            StoreAuthorizationError: The server refused the operation to this user.
            StoreUnavailableError: Any other driver error, or an injected client used in an
                event loop other than its own.
        """
        try:
            yield
        except PyMongoError as exc:
            reason = self.describe(exc)
            if refused_to_user(exc):
                raise StoreAuthorizationError(operation, self.hosts, reason) from None
            failure: type[StoreUnavailableError] = StoreUnavailableError
            if isinstance(exc, OperationFailure) and exc.code == _AUTHENTICATION_FAILED:
                reason += " (check the user, password and authSource of the URL)"
                failure = StoreAuthenticationError
            text = f"{operation} on {self.hosts} failed: {reason}"
            raise failure(text, hosts=self.hosts, reason=reason) from None
        except RuntimeError as exc:
            if not any(message in str(exc) for message in _OTHER_LOOP_MESSAGES):
                raise
            raise StoreUnavailableError(
                f"{operation} on {self.hosts} failed: the injected client belongs to another "
                "event loop; create the client in the loop that uses the store, or build the "
                "store from url= (it keeps one client per event loop)"
            ) from None

    async def aclose(self) -> None:
        """Close the clients this connection created; idempotent. Injected ones stay open."""
        if self.closed:
            return
        self.closed = True
        current = asyncio.get_running_loop()
        for loop, (_, watcher) in list(self._watchers.items()):
            if loop is current:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(watcher.cancel)
        if self._spare is not None:
            await _close_client(self._spare)
            self._spare = None


@dataclass
class ClientFacts:
    """What one client has learned about its server, shared by every store on that client."""

    indexed: set[tuple[str, str]] = field(default_factory=set)
    """The ``(database, collection_prefix)`` pairs whose indexes were ensured through it."""
    owned: set[tuple[str, str]] = field(default_factory=set)
    """The ``(database, collection_prefix)`` pairs whose collections passed the ownership check."""
    max_bson: int | None = None
    """The server's document size limit, once asked."""
    change_streams: bool = True
    """False once a follower found the deployment has no change streams (it polls)."""
    keyrings: dict[int, Any] = field(default_factory=dict)
    """``encryption.Keyring`` objects on this client, by the id of their settings."""
    bulk_write: bool = False
    """Whether the server and driver take the client ``bulkWrite`` command (MongoDB 8.0+);
    learned with ``max_bson``, and turned off if the server refuses the command after all."""
    commands: bool = True
    """Whether the client sends commands: mongomock's cannot (nor its ``bulk_write`` take
    PyMongo's ``UpdateOne``); learned with ``max_bson``."""
    transactions: bool = False
    """Whether the deployment takes multi-document transactions (a replica set member or a
    ``mongos``); learned with ``max_bson``, and turned off if the server refuses one after all."""


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


async def _close_client(client: Any) -> None:
    """Close ``client`` at once, even when its server cannot be reached.

    ``close()`` first ends the client's server sessions with a command that waits for a server
    for the whole ``serverSelectionTimeoutMS``; with no server known to be up (an outage, a
    Ctrl-C while reconnecting) nothing would answer it, so the sessions are let go instead: the
    server expires them itself after 30 minutes.
    """
    description = client.topology_description
    topology = getattr(client, "_topology", None)
    if not description.has_readable_server(ReadPreference.PRIMARY_PREFERRED) and topology:
        topology.pop_all_sessions()
    await client.close()
