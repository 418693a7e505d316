"""One exception hierarchy for every store, rooted at `SessionStoreError`.

Usage::

    from session_store_protocol import SessionStoreError

    try:
        await store.append(key, entries)
    except SessionStoreError as exc:
        log.warning("transcript not mirrored: %s", exc)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DuplicateKindError",
    "EncryptionKeyError",
    "EncryptionUnavailableError",
    "EntryTooLargeError",
    "ForeignCollectionError",
    "InvalidEntryError",
    "InvalidKeyError",
    "InvalidStoreOptionsError",
    "KeyDestroyedError",
    "SessionStoreError",
    "StoreAuthenticationError",
    "StoreAuthorizationError",
    "StoreClosedError",
    "StoreUnavailableError",
    "SummariesUnavailableError",
    "UnknownKindError",
]


class SessionStoreError(Exception):
    """Base class of every error a session store or the registry raises."""


class InvalidKeyError(SessionStoreError, ValueError):
    """A session key is malformed; nothing was read or written."""


class InvalidEntryError(SessionStoreError, ValueError):
    """An entry or a batch is malformed; nothing of the batch was written."""


class EntryTooLargeError(InvalidEntryError):
    """An entry exceeds the store's configured maximum size."""


class InvalidStoreOptionsError(SessionStoreError, ValueError):
    """Store options (from the wire or the server side) are unknown, unsafe or malformed."""


class StoreUnavailableError(SessionStoreError, ConnectionError):
    """The backend could not be reached or failed an operation; the message names the host.

    ``hosts`` and ``reason`` (the server and what went wrong, neither holding a password) are
    set when the failure came from the server, so that a caller can tell it in its own words.
    """

    def __init__(
        self, message: str, *, hosts: str | None = None, reason: str | None = None
    ) -> None:
        self.hosts = hosts
        self.reason = reason
        super().__init__(message)


class ForeignCollectionError(SessionStoreError):
    """A collection the store would write holds data it did not write; nothing was touched."""


class StoreClosedError(SessionStoreError, RuntimeError):
    """The store was used after ``close()``."""


class SummariesUnavailableError(SessionStoreError, ImportError):
    """Session summaries need an optional dependency that is not installed."""


class EncryptionUnavailableError(SessionStoreError, ImportError):
    """Encryption at rest needs an optional dependency that is not installed."""


class EncryptionKeyError(SessionStoreError):
    """A master or data key is missing, wrong or unreachable; the message names no key material."""


class KeyDestroyedError(EncryptionKeyError):
    """The tenant's data key was destroyed (``forget``): what it encrypted is gone for good."""


class DuplicateKindError(SessionStoreError, ValueError):
    """Two plugins registered the same store kind."""


class UnknownKindError(SessionStoreError, KeyError):
    """No plugin offers the requested store kind."""

    def __init__(self, kind: object, available: Iterable[str]) -> None:
        self.kind = kind
        self.available = sorted(available)
        listed = ", ".join(self.available) or "none"
        super().__init__(f"unknown session store kind {kind!r}; available kinds: {listed}")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


class StoreAuthenticationError(StoreUnavailableError):
    """The backend refused the credentials; the message names the host, never the password."""


class StoreAuthorizationError(StoreAuthenticationError):
    """The backend refused an operation the user holds no privilege for (a read-only user's write).

    ``operation`` is the store's call that was refused, ``hosts`` the server, ``reason`` the
    server's word for it; none holds a password.
    """

    hosts: str
    reason: str

    def __init__(self, operation: str, hosts: str, reason: str) -> None:
        self.operation = operation
        super().__init__(f"{operation} on {hosts} failed: {reason}", hosts=hosts, reason=reason)
