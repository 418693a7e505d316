"""MongoDB ``SessionStore`` for Claude Agent SDK harnesses (store kind ``mongo``).

Usage::

    from session_store_mongo import MongoSessionStore

    async with MongoSessionStore.from_url("mongodb://localhost:27017") as store:
        await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user"}])
        print(await store.load({"project_key": "p", "session_id": "s"}))

Encrypted at rest, one data key per project (``pip install 'session-store-mongo[encryption]'``)::

    from session_store_mongo import EncryptionSettings

    settings = EncryptionSettings(kms_providers={"local": {"key": master_key}})
    store = MongoSessionStore.from_url(url, encryption=settings)

Or let a harness discover it: ``StoreRegistry().build({"kind": "mongo"})`` with ``MONGO_URL`` set.
"""

from __future__ import annotations

from .builder import mongo_session_store_builder
from .encryption import EncryptionSettings
from .layout import validate_database_name
from .store import (
    DEFAULT_CLIENT_OPTIONS,
    DEFAULT_COLLECTION_PREFIX,
    DEFAULT_DATABASE,
    Forgotten,
    MongoSessionStore,
    NewTranscript,
    SessionTotals,
    StoredEntry,
    StoreStats,
)

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "DEFAULT_COLLECTION_PREFIX",
    "DEFAULT_DATABASE",
    "EncryptionSettings",
    "Forgotten",
    "MongoSessionStore",
    "NewTranscript",
    "SessionTotals",
    "StoreStats",
    "StoredEntry",
    "mongo_session_store_builder",
    "validate_database_name",
]
