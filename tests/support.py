"""Helpers the test modules share (fixtures stay in ``conftest.py``).

Usage::

    from tests.support import FIXTURES, StoreFactory, encryption_settings, store_collection

    log = CommandLog()      # client_options={"event_listeners": [log]}; then log.names
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo import monitoring

from session_store_mongo import EncryptionSettings, MongoSessionStore
from session_store_protocol import SessionStore

__all__ = [
    "FIXTURES",
    "CommandLog",
    "IN_CI",
    "MASTER_KEY",
    "MONGO_URL",
    "REPO_ROOT",
    "StoreFactory",
    "encryption_settings",
    "predecessor_document",
    "store_collection",
    "unique_name",
]

MONGO_URL = os.environ.get("MONGO_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

StoreFactory = Callable[[], SessionStore]

MASTER_KEY = os.urandom(96)
"""The tests' local master key (libmongocrypt's ``local`` provider takes 96 bytes)."""


class CommandLog(monitoring.CommandListener):
    """Records every command a client sends: its name, and the command itself."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.commands: list[dict[str, Any]] = []

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.names.clear()
        self.commands.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)
        self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def unique_name(prefix: str = "t") -> str:
    """A database or session name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def store_collection(client: Any, store: MongoSessionStore, name: str) -> Any:
    """The store's collection ``name`` (``entries``, ``sessions`` or ``entry_chunks``)."""
    return client[store.database][store.collection_prefix + name]


def predecessor_document(
    session_id: str, project_key: str, entries: list[Any], updated_at: datetime
) -> dict[str, Any]:
    """One session as ``@open-gitagent/session-store-mongo`` 0.2 stored it."""
    return {
        "_id": session_id,
        "projectKey": project_key,
        "entries": entries,
        "updatedAt": updated_at,
    }


def encryption_settings(
    database: str, master_key: bytes = MASTER_KEY, **settings: Any
) -> EncryptionSettings:
    """Encryption under a local master key, with the key vault inside ``database``."""
    return EncryptionSettings(
        kms_providers={"local": {"key": master_key}},
        key_vault_namespace=f"{database}.__keyVault",
        **settings,
    )
