"""The ``SessionStore`` contract, plugin discovery and the in-memory reference store.

Usage::

    from session_store_protocol import StoreRegistry

    registry = StoreRegistry()
    print(registry.kinds())                          # ['memory', 'mongo']
    store = registry.build({"kind": "memory"})
    await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user"}])

A plugin module implements the one hook::

    from session_store_protocol import hookimpl

    @hookimpl
    def register_session_stores(register):
        register("mystore", build_my_store)
"""

from __future__ import annotations

from .errors import (
    DuplicateKindError,
    EncryptionKeyError,
    EncryptionUnavailableError,
    EntryTooLargeError,
    ForeignCollectionError,
    InvalidEntryError,
    InvalidKeyError,
    InvalidStoreOptionsError,
    KeyDestroyedError,
    SessionStoreError,
    StoreAuthenticationError,
    StoreAuthorizationError,
    StoreClosedError,
    StoreUnavailableError,
    SummariesUnavailableError,
    UnknownKindError,
)
from .hookspecs import Builder, hookimpl
from .memory import InMemorySessionStore
from .registry import ENTRY_POINT_GROUP, PLUGINS_ENV_VAR, PluginFailure, PluginInfo, StoreRegistry
from .types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    StoreConfig,
)
from .validation import (
    copy_entries,
    validate_entries,
    validate_key,
    validate_project_key,
    validate_session_key,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV_VAR",
    "Builder",
    "DuplicateKindError",
    "EncryptionKeyError",
    "EncryptionUnavailableError",
    "EntryTooLargeError",
    "ForeignCollectionError",
    "InMemorySessionStore",
    "InvalidEntryError",
    "InvalidKeyError",
    "InvalidStoreOptionsError",
    "KeyDestroyedError",
    "PluginFailure",
    "PluginInfo",
    "SessionKey",
    "SessionListSubkeysKey",
    "SessionStore",
    "SessionStoreEntry",
    "SessionStoreError",
    "SessionStoreListEntry",
    "SessionSummaryEntry",
    "StoreAuthenticationError",
    "StoreAuthorizationError",
    "StoreClosedError",
    "StoreConfig",
    "StoreRegistry",
    "StoreUnavailableError",
    "SummariesUnavailableError",
    "UnknownKindError",
    "copy_entries",
    "hookimpl",
    "validate_entries",
    "validate_key",
    "validate_project_key",
    "validate_session_key",
]
