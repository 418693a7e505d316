"""Encryption at rest: its settings, and the keyring that holds one data key per tenant.

Usage::

    from session_store_mongo import EncryptionSettings, MongoSessionStore

    settings = EncryptionSettings(
        kms_providers={"local": {"key": master_key}},   # 96 bytes; or aws, azure, gcp, kmip
        key_vault_namespace="encryption.__keyVault",
    )
    store = MongoSessionStore(url=url, encryption=settings)

    keyring = Keyring(settings, client)                  # what the store builds from them
    sealed = await keyring.encrypt("tenant-name", {"entry": {...}}, "transcript p/s")
    fields = await keyring.decrypt(sealed, "transcript p/s")

The cryptography is PyMongo's explicit client-side field-level encryption
(``pip install 'session-store-mongo[encryption]'``: libmongocrypt in the ``pymongocrypt`` wheels,
no ``mongocryptd``, no server edition). A ``Keyring`` wraps one ``AsyncClientEncryption``: it
finds a tenant's data key by its key alt name and creates it on first use (the key vault's unique
index on ``keyAltNames`` decides between racing processes), remembers key ids in a bounded cache,
destroys and rewraps keys, and turns libmongocrypt's errors into typed errors that name neither
key material nor passwords. What a tenant is, and what of a document gets encrypted, is the
business of ``sealer``.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import Binary
from bson.binary import STANDARD
from bson.codec_options import CodecOptions
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from session_store_protocol.errors import (
    EncryptionKeyError,
    EncryptionUnavailableError,
    InvalidStoreOptionsError,
)

from .client import client_facts
from .driver import pymongo_client
from .redact import redact_text

__all__ = [
    "DEFAULT_KEY_VAULT_NAMESPACE",
    "INSTALL_HINT",
    "EncryptionSettings",
    "KeyNotFoundError",
    "Keyring",
    "keyring_for",
    "settings_file_fault",
]

INSTALL_HINT = "pip install 'session-store-mongo[encryption]'"
DEFAULT_KEY_VAULT_NAMESPACE = "encryption.__keyVault"
"""MongoDB's customary key vault collection."""

_KEY_SCOPES = ("project", "session")
_NEEDS_MASTER_KEY = ("aws", "azure", "gcp")
_RANDOM = "AEAD_AES_256_CBC_HMAC_SHA_512-Random"
_DETERMINISTIC = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"
_KEY_NOT_FOUND = "not all keys requested were satisfied"
_WRONG_KEY = "HMAC validation failure"
_HASH_LABEL = "session-store-mongo dedupe key v1"
"""Encrypted deterministically under a tenant's data key, it becomes that tenant's hash key."""
_CACHED_TENANTS = 4096
_SETTINGS_FIELDS = frozenset(
    {
        "kms_providers",
        "key_vault_namespace",
        "kms_provider",
        "master_key",
        "key_scope",
        "kms_tls_options",
        "key_cache_ms",
    }
)


class KeyNotFoundError(EncryptionKeyError):
    """The key vault holds no data key for a ciphertext (destroyed, or another key vault)."""


@dataclass(frozen=True)
class EncryptionSettings:
    """How a store encrypts: master keys, the key vault, and whose data shares a data key.

    Configured server-side only: a builder accepts these in its defaults, never from the wire.
    ``repr()`` shows no key material.
    """

    kms_providers: Mapping[str, Any] = field(repr=False)
    """PyMongo's ``kms_providers``: ``{"local": {"key": <96 bytes or base64>}}`` for development
    and tests, or ``aws``, ``azure``, ``gcp``, ``kmip`` credentials (named ones such as
    ``"local:2026"`` too). Every provider that wrapped a data key must be listed to read it."""
    key_vault_namespace: str = DEFAULT_KEY_VAULT_NAMESPACE
    """``database.collection`` of the key vault, on the store's server."""
    kms_provider: str | None = None
    """Which provider wraps new data keys (and ``rotate_keys`` rewraps under); by default the
    only one in ``kms_providers``."""
    master_key: Mapping[str, Any] | None = None
    """Which master key of that provider: required for aws (``region``, ``key``), azure
    (``keyVaultEndpoint``, ``keyName``) and gcp (``projectId``, ``location``, ``keyRing``,
    ``keyName``); optional for kmip; unused for local."""
    key_scope: str = "project"
    """``"project"``: one data key per project key (the tenant); ``"session"``: one per session."""
    kms_tls_options: Mapping[str, Any] | None = field(default=None, repr=False)
    """PyMongo's ``kms_tls_options``, per provider."""
    key_cache_ms: int = 60_000
    """How long libmongocrypt keeps a data key it fetched: a process that holds a key can still
    use it this long after ``forget`` destroyed it elsewhere."""

    def __post_init__(self) -> None:
        if not isinstance(self.kms_providers, Mapping) or not self.kms_providers:
            raise EncryptionKeyError(
                "no master key configured: encryption needs kms_providers, e.g. "
                "{'local': {'key': <96 bytes>}} or your KMS's credentials"
            )
        if self.kms_provider is None:
            if len(self.kms_providers) != 1:
                raise InvalidStoreOptionsError(
                    f"kms_providers lists {sorted(self.kms_providers)}: set kms_provider to the "
                    "one that wraps new data keys"
                )
            object.__setattr__(self, "kms_provider", next(iter(self.kms_providers)))
        elif self.kms_provider not in self.kms_providers:
            raise EncryptionKeyError(
                f"no master key for KMS provider {self.kms_provider!r}: kms_providers lists only "
                f"{sorted(self.kms_providers)}"
            )
        provider = str(self.kms_provider).split(":", 1)[0]
        if provider in _NEEDS_MASTER_KEY and not self.master_key:
            raise InvalidStoreOptionsError(
                f"KMS provider {self.kms_provider!r} needs master_key: which of its keys wraps "
                "the data keys"
            )
        database, _, collection = self.key_vault_namespace.partition(".")
        if not database or not collection or "$" in self.key_vault_namespace:
            raise InvalidStoreOptionsError(
                f"key_vault_namespace must be 'database.collection', got "
                f"{self.key_vault_namespace!r}"
            )
        if self.key_scope not in _KEY_SCOPES:
            raise InvalidStoreOptionsError(
                f"key_scope must be one of {list(_KEY_SCOPES)}, got {self.key_scope!r}"
            )
        if isinstance(self.key_cache_ms, bool) or not (
            isinstance(self.key_cache_ms, int) and self.key_cache_ms > 0
        ):
            # libmongocrypt reads 0 as "never expire": a destroyed key would stay usable.
            raise InvalidStoreOptionsError("key_cache_ms must be a positive integer")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> EncryptionSettings:
        """Settings from a plain mapping (a builder's defaults, a JSON file).

        Raises:
            InvalidStoreOptionsError: Unknown or malformed settings.
            EncryptionKeyError: No master key is configured.
        """
        if not isinstance(settings, Mapping):
            raise InvalidStoreOptionsError("encryption settings must be a mapping")
        unknown = set(settings) - _SETTINGS_FIELDS
        if unknown:
            raise InvalidStoreOptionsError(
                f"unknown encryption settings {sorted(map(str, unknown))}; "
                f"known: {sorted(_SETTINGS_FIELDS)}"
            )
        return cls(**settings)

    @classmethod
    def from_file(cls, path: Path) -> EncryptionSettings:
        """Settings from a JSON file (base64 strings for binary keys); what the CLI reads.

        Every fault is a mistake in the file, reported the same way: ``cannot read encryption
        settings from PATH: why``.

        Raises:
            InvalidStoreOptionsError: The file is unreadable, not JSON, holds bad settings, or
                configures no master key.
        """
        try:
            settings = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            # Never echo the file's content: it holds key material.
            reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
            raise settings_file_fault(path, reason) from None
        try:
            return cls.from_mapping(settings)
        except (InvalidStoreOptionsError, EncryptionKeyError) as exc:
            raise settings_file_fault(path, exc) from None

    def secrets(self) -> list[str]:
        """Every credential in the settings, as it could appear in a message (for scrubbing)."""
        found: list[str] = []

        def collect(value: Any) -> None:
            if isinstance(value, Mapping):
                for item in value.values():
                    collect(item)
            elif isinstance(value, (bytes, bytearray)):
                found.append(base64.b64encode(bytes(value)).decode())
                found.append(bytes(value).hex())
            elif isinstance(value, str) and len(value) >= 8:
                found.append(value)

        collect(self.kms_providers)
        collect(self.kms_tls_options or {})
        return found


def settings_file_fault(path: Path, reason: object) -> InvalidStoreOptionsError:
    """The error for an encryption settings file that cannot be used, and ``reason`` why.

    Its messages name no key material: the file's content is never echoed.
    """
    return InvalidStoreOptionsError(f"cannot read encryption settings from {path}: {reason}")


@dataclass
class _DataKey:
    key_id: Any
    hash_key: bytes | None = None


class Keyring:
    """Data keys by name in one key vault, and encryption under them.

    One per client and settings (``keyring_for``; a builder's stores share it). It holds no
    connection of its own, and goes with its client. Key ids are cached,
    at most ``_CACHED_TENANTS`` names, least recently used first out; a name whose key was
    destroyed is dropped from the cache the first time libmongocrypt misses its key.
    """

    def __init__(self, settings: EncryptionSettings, client: Any) -> None:
        """Check the extra is installed and set up libmongocrypt; nothing connects yet.

        Raises:
            EncryptionUnavailableError: ``pymongo[encryption]`` is not installed.
            InvalidStoreOptionsError: ``client`` is not PyMongo's ``AsyncMongoClient``.
            EncryptionKeyError: libmongocrypt refuses the master key settings.
        """
        try:
            import pymongocrypt  # noqa: F401  (imported to check the extra is installed)
        except ImportError:
            raise EncryptionUnavailableError(
                f"encryption at rest needs libmongocrypt: {INSTALL_HINT}"
            ) from None
        from pymongo import AsyncMongoClient

        if not isinstance(pymongo_client(client), AsyncMongoClient):
            raise InvalidStoreOptionsError(
                "encryption needs PyMongo's AsyncMongoClient (url=, or client=AsyncMongoClient); "
                f"libmongocrypt cannot work through {type(client).__name__}"
            )
        self.settings = settings
        self._client = client
        self._secrets = settings.secrets()
        database, _, collection = settings.key_vault_namespace.partition(".")
        self.vault = client[database][collection]
        self._keys: OrderedDict[str, _DataKey] = OrderedDict()
        self._encryption = self._client_encryption()
        self.indexed = False
        """Whether ``ensure_index`` ran through this keyring."""

    def _client_encryption(self) -> Any:
        from pymongo.asynchronous.encryption import AsyncClientEncryption

        try:
            return AsyncClientEncryption(
                self.settings.kms_providers,
                self.settings.key_vault_namespace,
                self._client,
                CodecOptions(uuid_representation=STANDARD),
                kms_tls_options=self.settings.kms_tls_options,
                key_expiration_ms=self.settings.key_cache_ms,
            )
        except Exception as exc:
            raise EncryptionKeyError(
                f"libmongocrypt refused the master key settings: {self._describe(exc)}"
            ) from None

    def _describe(self, exc: BaseException) -> str:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return redact_text(first_line, self._secrets)

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn libmongocrypt's errors into typed ones; the key vault's server errors pass."""
        from pymongo.errors import EncryptionError

        try:
            yield
        except EncryptionError as exc:
            cause = exc.cause
            if isinstance(cause, PyMongoError):  # the key vault's server failed: the store says so
                raise cause from None
            text = self._describe(cause)
            if _KEY_NOT_FOUND in text:
                raise KeyNotFoundError(
                    f"{action}: key vault {self.settings.key_vault_namespace} holds no data key "
                    "for it (destroyed, or another key_vault_namespace)"
                ) from None
            if _WRONG_KEY in text:
                raise EncryptionKeyError(
                    f"{action}: the configured master key does not open its data key "
                    "(wrong master key?), or the stored ciphertext was altered"
                ) from None
            raise EncryptionKeyError(f"{action} failed: {text}") from None

    async def ensure_index(self) -> None:
        """Create the key vault's unique index on ``keyAltNames`` (an equivalent one will do).

        The index is what makes creating a tenant's key race-safe across processes.

        Raises:
            InvalidStoreOptionsError: There is none, and it cannot be created.
        """
        try:
            await self.vault.create_index(
                "keyAltNames",
                name="keyAltNames_1",
                unique=True,
                partialFilterExpression={"keyAltNames": {"$exists": True}},
            )
        except OperationFailure as exc:  # one exists with other options, or we may not create it
            indexes = await self.vault.index_information()
            if not any(
                spec.get("key") == [("keyAltNames", 1)] and spec.get("unique")
                for spec in indexes.values()
            ):
                raise InvalidStoreOptionsError(
                    f"key vault {self.settings.key_vault_namespace} needs a unique index on "
                    "keyAltNames (else two processes may create two keys for one tenant), and "
                    f"it could not be created: {self._describe(exc)}"
                ) from None
        self.indexed = True

    async def _data_key(
        self, name: str, action: str, before_creating: Callable[[], Awaitable[None]] | None
    ) -> _DataKey:
        """The data key named ``name``, created on first use, once ``before_creating`` passed."""
        cached = self._keys.get(name)
        if cached is not None:
            self._keys.move_to_end(name)
            return cached
        found = await self._encryption.get_key_by_alt_name(name)
        if found is None:
            if before_creating is not None:
                await before_creating()
            try:
                with self._translated(f"{action}: creating its data key"):
                    key_id = await self._encryption.create_data_key(
                        self.settings.kms_provider,
                        master_key=self.settings.master_key,
                        key_alt_names=[name],
                    )
            except DuplicateKeyError:  # another process created it first: use that one
                found = await self._encryption.get_key_by_alt_name(name)
                if found is None:  # destroyed in between
                    raise KeyNotFoundError(f"{action}: its data key vanished") from None
                key_id = found["_id"]
        else:
            key_id = found["_id"]
        data_key = self._keys[name] = _DataKey(key_id)
        while len(self._keys) > _CACHED_TENANTS:
            self._keys.popitem(last=False)
        return data_key

    async def encrypt(
        self,
        name: str,
        value: Mapping[str, Any],
        action: str,
        *,
        before_creating: Callable[[], Awaitable[None]] | None = None,
    ) -> Binary:
        """Encrypt ``value`` (randomized) under the data key ``name``, creating it if needed.

        ``action`` says in errors what was being done, e.g. ``"sealing transcript p/s"``.
        ``before_creating`` runs when the key must be created, and may refuse by raising:
        then no key is created.
        """
        for attempt in (1, 2):
            data_key = await self._data_key(name, action, before_creating)
            try:
                with self._translated(action):
                    sealed: Binary = await self._encryption.encrypt(
                        value, _RANDOM, key_id=data_key.key_id
                    )
                    return sealed
            except KeyNotFoundError:
                # Destroyed by another process since we cached its id: look it up (or create
                # a fresh one) once more.
                self._keys.pop(name, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def decrypt(self, sealed: Binary, action: str) -> Any:
        """Decrypt a value ``encrypt`` returned.

        Raises:
            KeyNotFoundError: Its data key is not in the key vault (any more).
            EncryptionKeyError: The master key does not open its data key.
        """
        with self._translated(action):
            return await self._encryption.decrypt(sealed)

    async def hash_key(
        self,
        name: str,
        action: str,
        *,
        before_creating: Callable[[], Awaitable[None]] | None = None,
    ) -> bytes:
        """A secret only the data key ``name`` can produce, for keyed hashes (dedupe values).

        It is ``_HASH_LABEL`` encrypted deterministically under that key: the same in every
        process, gone with the key. ``before_creating`` is ``encrypt``'s.
        """
        data_key = await self._data_key(name, action, before_creating)
        if data_key.hash_key is None:
            with self._translated(action):
                derived = await self._encryption.encrypt(
                    _HASH_LABEL, _DETERMINISTIC, key_id=data_key.key_id
                )
            data_key.hash_key = bytes(derived)
        return data_key.hash_key

    async def key_ids(self, names: Mapping[str, Any]) -> list[Any]:
        """The ids of the data keys whose alt names match the filter ``names``."""
        cursor = self.vault.find({"keyAltNames": names}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def destroy(self, key_ids: list[Any]) -> int:
        """Delete these data keys; this process forgets every key it held.

        libmongocrypt keeps keys it fetched for ``key_cache_ms``: a fresh ``ClientEncryption``
        drops that cache here at once (other processes keep theirs until it expires).
        """
        if not key_ids:
            return 0
        # Majority: a destroyed key must not come back when a primary's writes are rolled back.
        vault = self.vault.with_options(write_concern=WriteConcern("majority"))
        result = await vault.delete_many({"_id": {"$in": key_ids}})
        self._keys.clear()
        # Operations in flight finish on the old one; it is closed when they let go of it.
        self._encryption = self._client_encryption()
        return int(result.deleted_count)

    async def rewrap(self, names: Mapping[str, Any]) -> int:
        """Rewrap the data keys matching ``names`` under the configured provider and master key.

        Returns:
            How many data keys were rewrapped. Nothing they encrypted changes.
        """
        with self._translated("rewrapping data keys"):
            result = await self._encryption.rewrap_many_data_key(
                {"keyAltNames": names},
                provider=self.settings.kms_provider,
                master_key=self.settings.master_key,
            )
        written = result.bulk_write_result
        return 0 if written is None else int(written.modified_count)


def keyring_for(settings: EncryptionSettings, client: Any) -> Keyring:
    """The keyring of ``settings`` on ``client``, made on first use and shared after.

    Every store on one client (a builder's, all loops' own) with the same settings object
    shares one key cache. A keyring is bound to its client: it goes when the client does.

    Raises:
        EncryptionUnavailableError: ``pymongo[encryption]`` is not installed.
        InvalidStoreOptionsError: ``client`` is not PyMongo's ``AsyncMongoClient``.
        EncryptionKeyError: libmongocrypt refuses the master key settings.
    """
    keyrings = client_facts(client).keyrings
    keyring = keyrings.get(id(settings))
    if keyring is None or keyring.settings is not settings:  # an id reused by other settings
        keyring = keyrings[id(settings)] = Keyring(settings, client)
    return keyring
