"""Build Mongo stores from wire options, sharing one client per builder.

Usage, in a harness (the URL and credentials stay server-side)::

    from session_store_protocol import StoreRegistry
    from session_store_mongo import mongo_session_store_builder

    registry = StoreRegistry()
    registry.register(
        "mongo",
        mongo_session_store_builder(
            {"url": os.environ["MONGO_URL"], "allowed_database_prefix": "tenant_"}
        ),
        replace=True,
    )
    store = registry.build({"kind": "mongo", "options": {"database": "tenant_acme"}})

Wire options may set only ``database`` and ``collection_prefix``, validated against MongoDB's
naming rules, and only within what the server allows: without an allow-list, the wire cannot
move the store off its configured database and prefix. ``url``, client options, encryption
settings and unknown keys are refused. Encryption is server-side only: with ``encryption`` in the
defaults, every store the builder builds encrypts, and no wire option can turn that off or point
it at another key vault. Make a builder with ``mongo_session_store_builder``;
``MongoStoreBuilder`` is its type.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from session_store_protocol.errors import InvalidStoreOptionsError

from .client import Connection, hosts_in_url
from .encryption import EncryptionSettings
from .layout import validate_collection_prefix, validate_database_name
from .store import DEFAULT_COLLECTION_PREFIX, DEFAULT_DATABASE, MongoSessionStore

__all__ = [
    "SERVER_OPTIONS",
    "WIRE_OPTIONS",
    "MongoStoreBuilder",
    "mongo_session_store_builder",
    "validate_collection_prefix",
    "validate_database_name",
]

WIRE_OPTIONS = frozenset({"database", "collection_prefix"})
"""The only options a client may send over the wire."""

SERVER_OPTIONS = frozenset(
    {
        "url",
        "client",
        "client_options",
        "database",
        "collection_prefix",
        "allowed_databases",
        "allowed_database_prefix",
        "allowed_collection_prefixes",
        "create_indexes",
        "max_entry_bytes",
        "encryption",
    }
)
"""The options a harness may set server-side, in the builder's defaults."""


class MongoStoreBuilder:
    """``builder(options) -> MongoSessionStore``, all stores on one shared client.

    Made by ``mongo_session_store_builder(defaults)``. The client is created on the first build
    and closed by ``aclose()``; stores built here never close it. Building 1,000 stores opens
    one connection pool, not 1,000.
    """

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        """Keep the server-side defaults; nothing connects yet.

        Args:
            defaults: Server-side options (see ``SERVER_OPTIONS``): ``url`` or an injected
                ``client``, ``client_options``, default ``database`` and ``collection_prefix``,
                the allow-list for wire databases: ``allowed_databases`` (names) and/or
                ``allowed_database_prefix``, and for wire collection prefixes:
                ``allowed_collection_prefixes``. Without them the wire may only repeat the
                defaults. ``encryption`` (``EncryptionSettings``, or a mapping of its fields)
                encrypts every store at rest.

        Raises:
            InvalidStoreOptionsError: Unknown or malformed defaults.
            EncryptionKeyError: ``encryption`` configures no master key.
        """
        settings = dict(defaults or {})
        unknown = set(settings) - SERVER_OPTIONS
        if unknown:
            raise InvalidStoreOptionsError(
                f"unknown mongo store settings {sorted(unknown)}; known: {sorted(SERVER_OPTIONS)}"
            )
        if settings.get("url") is not None and settings.get("client") is not None:
            raise InvalidStoreOptionsError("set url or client, not both")
        self._database = validate_database_name(settings.pop("database", DEFAULT_DATABASE))
        self._collection_prefix = validate_collection_prefix(
            settings.pop("collection_prefix", DEFAULT_COLLECTION_PREFIX)
        )
        allowed = _names("allowed_databases", settings.pop("allowed_databases", None) or ())
        self._allowed_databases = {self._database, *map(validate_database_name, allowed)}
        prefix = settings.pop("allowed_database_prefix", None)
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise InvalidStoreOptionsError("allowed_database_prefix must be a non-empty string")
        self._allowed_database_prefix: str | None = prefix
        prefixes = _names(
            "allowed_collection_prefixes", settings.pop("allowed_collection_prefixes", None) or ()
        )
        self._allowed_collection_prefixes = {
            self._collection_prefix,
            *map(validate_collection_prefix, prefixes),
        }
        self._url: str | None = settings.pop("url", None)
        if self._url is not None:
            hosts_in_url(self._url)  # a malformed URL is refused now, not at the first build
        self._client: Any = settings.pop("client", None)
        self._client_options: Mapping[str, Any] = settings.pop("client_options", None) or {}
        encryption = settings.pop("encryption", None)
        if encryption is not None and not isinstance(encryption, EncryptionSettings):
            encryption = EncryptionSettings.from_mapping(encryption)
        self._encryption: EncryptionSettings | None = encryption
        self._store_options = settings
        self._connection: Connection | None = None

    def _allowed_database(self, database: str) -> str:
        if database in self._allowed_databases or (
            self._allowed_database_prefix is not None
            and database.startswith(self._allowed_database_prefix)
        ):
            return database
        raise InvalidStoreOptionsError(
            f"database {database!r} is not allowed by this server's configuration (it allows "
            "only its configured database unless allowed_databases or allowed_database_prefix "
            "says otherwise)"
        )

    def _allowed_collection_prefix(self, prefix: str) -> str:
        if prefix in self._allowed_collection_prefixes:
            return prefix
        raise InvalidStoreOptionsError(
            f"collection_prefix {prefix!r} is not allowed by this server's configuration (it "
            "allows only its configured prefix unless allowed_collection_prefixes lists more)"
        )

    def _shared_connection(self) -> Connection:
        """The connection every store shares: created on the first build, closed by aclose()."""
        if self._connection is None:
            if self._client is not None:
                self._connection = Connection.of_client(self._client)
            elif self._url is not None:
                self._connection = Connection.from_url(self._url, self._client_options)
            else:
                raise InvalidStoreOptionsError(
                    "no MongoDB URL configured for store kind 'mongo': set MONGO_URL, or "
                    "register mongo_session_store_builder({'url': ...}) in the harness"
                )
        return self._connection

    def __call__(self, options: Mapping[str, Any] | None = None) -> MongoSessionStore:
        """Build a store for the wire ``options`` on the shared client.

        Raises:
            InvalidStoreOptionsError: An option outside ``WIRE_OPTIONS`` (``url``, client
                options, anything unknown), a bad value, or a database or collection prefix the
                server does not allow.
        """
        wire = dict(options or {})
        unknown = set(wire) - WIRE_OPTIONS
        if unknown:
            raise InvalidStoreOptionsError(
                f"wire options {sorted(map(str, unknown))} are not accepted for kind 'mongo'; "
                f"a client may set only {sorted(WIRE_OPTIONS)} (URLs and client settings stay "
                "server-side)"
            )
        database = self._allowed_database(
            validate_database_name(wire.get("database", self._database))
        )
        prefix = self._allowed_collection_prefix(
            validate_collection_prefix(wire.get("collection_prefix", self._collection_prefix))
        )
        return MongoSessionStore(
            connection=self._shared_connection(),
            database=database,
            collection_prefix=prefix,
            encryption=self._encryption,  # one settings object: one keyring per client
            **self._store_options,
        )

    async def aclose(self) -> None:
        """Close the shared client if this builder created it (an injected one stays open)."""
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None


def _names(setting: str, value: object) -> Collection[object]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidStoreOptionsError(f"{setting} must be a list of names")
    return list(value)


def mongo_session_store_builder(defaults: Mapping[str, Any] | None = None) -> MongoStoreBuilder:
    """Return the builder a harness registers for kind ``mongo`` (see ``MongoStoreBuilder``)."""
    return MongoStoreBuilder(defaults)
