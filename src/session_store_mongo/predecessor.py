"""The layout of ``@open-gitagent/session-store-mongo`` 0.2: how to recognise and read it.

Usage::

    from session_store_mongo.predecessor import looks_like_predecessor, read_session

    if looks_like_predecessor(doc):
        session = read_session(doc)        # PredecessorSession, or MalformedSessionError
        print(session.session_id, session.project_key, len(session.entries))

The npm package this project succeeds kept one document per session in
``computeragent_sessions.sessions``::

    { _id: "<sessionId>", projectKey: "<project key>", entries: [ {...}, ... ], updatedAt: Date }

keyed by the session id alone, with ``subpath`` ignored: a subagent's entries were pushed into
the array of the session that spawned it. ``session-store-mongo migrate`` reads this layout
(``session_store_mongo.migrate``); the ownership check names it when a store is pointed at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from session_store_protocol.errors import InvalidEntryError, InvalidKeyError
from session_store_protocol.types import SessionStoreEntry
from session_store_protocol.validation import copy_entries, validate_key

from .codec import entry_json

__all__ = [
    "PREDECESSOR",
    "PREDECESSOR_COLLECTION",
    "PREDECESSOR_DATABASE",
    "MalformedSessionError",
    "PredecessorSession",
    "looks_like_predecessor",
    "migrate_command",
    "read_session",
]

PREDECESSOR = "@open-gitagent/session-store-mongo 0.2"
PREDECESSOR_DATABASE = "computeragent_sessions"
PREDECESSOR_COLLECTION = "sessions"


class MalformedSessionError(ValueError):
    """A predecessor document that cannot be migrated as it is; the message says why."""


@dataclass(frozen=True)
class PredecessorSession:
    """One predecessor document, checked: every entry is one the store accepts."""

    session_id: str
    project_key: str
    entries: list[SessionStoreEntry]
    updated_at: datetime | None
    bytes: int
    """The entries' size as compact JSON."""


def looks_like_predecessor(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` has the predecessor's shape (an ``entries`` array and ``projectKey``)."""
    return isinstance(doc.get("entries"), list) and "projectKey" in doc


def migrate_command(database: str, collection: str) -> str:
    """The command that copies the predecessor's sessions in ``database.collection`` over."""
    command = "session-store-mongo migrate"
    if database != PREDECESSOR_DATABASE:
        command += f" --from-database {database}"
    if collection != PREDECESSOR_COLLECTION:
        command += f" --from-collection {collection}"
    return command


def read_session(doc: Mapping[str, Any]) -> PredecessorSession:
    """Check one predecessor document and return it as a ``PredecessorSession``.

    Raises:
        MalformedSessionError: Not a string ``_id`` or ``projectKey`` that makes a valid key,
            ``entries`` not an array of entries the store accepts (objects with a string
            ``type`` and JSON values only), or ``updatedAt`` present but not a date.
    """
    try:
        key = validate_key({"project_key": doc.get("projectKey"), "session_id": doc.get("_id")})
    except InvalidKeyError as exc:
        raise MalformedSessionError(f"no usable _id and projectKey: {exc}") from None
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise MalformedSessionError(f"entries is {type(entries).__name__}, not an array")
    try:
        copies = copy_entries(entries)  # the checks every store applies before appending
    except InvalidEntryError as exc:
        raise MalformedSessionError(str(exc)) from None
    updated_at = doc.get("updatedAt")
    if updated_at is not None and not isinstance(updated_at, datetime):
        raise MalformedSessionError(f"updatedAt is {type(updated_at).__name__}, not a date")
    if updated_at is not None and updated_at.tzinfo is None:
        updated_at = updated_at.replace(tzinfo=timezone.utc)  # BSON dates are UTC
    size = sum(len(entry_json(dict(entry))) for entry in copies)
    return PredecessorSession(key["session_id"], key["project_key"], copies, updated_at, size)
