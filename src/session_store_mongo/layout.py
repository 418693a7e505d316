"""Where a store keeps transcripts: its three collections, their indexes and key fields.

Usage::

    from session_store_mongo.layout import Collections, key_fields

    collections = Collections.of(client, "computeragent_sessions", DEFAULT_COLLECTION_PREFIX)
    await collections.ensure_indexes()
    await collections.entries.find_one(key_fields({"project_key": "p", "session_id": "s"}))

Collections (``{prefix}`` is the store's ``collection_prefix``, ``session_store_`` by default,
so that no common application's ``sessions`` is ours; ``""`` gives version 0.1's names):

- ``{prefix}entries``: one document per entry: ``project_key``, ``session_id``, ``subpath``
  (``""`` for the main transcript), ``seq`` (reserved on the server), ``dedupe`` (the entry's
  ``uuid``, or a fresh ObjectId), ``entry`` (the entry itself), and ``escaped`` / ``chunked``
  when the entry needed escaping or did not fit one document (a chunked entry's document also
  keeps its ``size``). A *hole* (``hole: true``, no ``entry``) marks a number that will never
  hold an entry (see ``summary``). Unique indexes ``entry_seq`` on (key, ``seq``) and
  ``entry_dedupe`` on (key, ``dedupe``).
- ``{prefix}sessions``: one document per transcript: ``seq`` (the last number reserved),
  ``settled`` (every number up to it decided and counted), ``count`` and ``bytes`` (the entries
  up to ``settled``), ``pending_since`` (the oldest reservation not settled), ``settled_at``,
  ``reserved_by``, ``mtime``, ``created``, ``deletions`` (how often ``delete`` emptied it:
  followers end on a change), ``encrypted`` (written by an encrypted store, ``ENCRYPTED``),
  and for main transcripts ``summary``,
  ``summary_seq``, ``summary_version`` and ``summary_at``. Unique index ``session_key`` on
  (key); index ``session_listing`` on (``project_key``, ``subpath``, ``session_id``) for the
  listings of a project's main transcripts; index ``session_mtime`` on ``mtime``; partial
  indexes ``session_encrypted``, ``session_sealed`` and ``session_forgotten`` on
  ``project_key``, holding only the documents an encrypted store wrote (``encrypted: true``),
  with a sealed summary, or marked forgotten (``ENCRYPTION_MARKS``), so that whether a project
  is encrypted is read without reading its clear transcripts.
- ``{prefix}entry_chunks``: parts of entries larger than one BSON document. Unique index
  ``chunk_part`` on (key, ``seq``, ``part``).

Every per-session index and query starts with ``project_key, session_id``, a valid shard key
for all three; the listings and their index start with ``project_key``, which routes them to
the project's chunks (``tests/test_query_plans.py`` checks every query the store sends).
A store creates indexes on and writes into them only once ``ownership`` has checked that they
are empty or hold only its own documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeGuard

from bson import Binary, ObjectId
from pymongo import ASCENDING, IndexModel

from session_store_protocol.errors import InvalidStoreOptionsError
from session_store_protocol.types import SessionKey, key_parts

__all__ = [
    "DEFAULT_COLLECTION_PREFIX",
    "ENCRYPTED",
    "ENCRYPTION_MARKS",
    "KEY_FIELDS",
    "KEY_INDEX",
    "LISTING_INDEX",
    "MAX_SEQ",
    "Collections",
    "hole",
    "is_seq",
    "key_fields",
    "validate_collection_prefix",
    "validate_database_name",
]

DEFAULT_COLLECTION_PREFIX = "session_store_"
"""Keeps the store's collections apart from common names such as another application's
``sessions`` (or the predecessor's, in the same default database)."""

KEY_INDEX: Sequence[tuple[str, int]] = [
    ("project_key", ASCENDING),
    ("session_id", ASCENDING),
    ("subpath", ASCENDING),
]
"""The key fields every per-session index starts with, in this order."""
KEY_FIELDS = tuple(field for field, _direction in KEY_INDEX)
LISTING_INDEX: Sequence[tuple[str, int]] = [
    ("project_key", ASCENDING),
    ("subpath", ASCENDING),
    ("session_id", ASCENDING),
]
"""A project's main transcripts (``subpath`` ``""``) side by side, for the listings."""

ENCRYPTED: Mapping[str, Any] = {"encrypted": True}
"""The mark an encrypted store writes on every transcript document it creates or writes to.

It never goes: ``forget`` and ``delete`` leave it, so a project once encrypted stays so until
its documents are pruned.
"""

ENCRYPTION_MARKS: Mapping[str, Mapping[str, Any]] = {
    "session_encrypted": ENCRYPTED,
    "session_sealed": {"summary_sealed": {"$gte": Binary(b"")}},
    "session_forgotten": {"forgotten": {"$gte": datetime(1, 1, 1, tzinfo=timezone.utc)}},
}
"""What marks a transcript of an encrypted project, by the partial index that holds such ones.

``ENCRYPTED``, on whatever an encrypted store wrote; for documents written before that mark
existed, a sealed summary (always binary data: the smallest is ``Binary(b"")``) or a
``forgotten`` stamp (always a date ``forget`` took from the server). Those two alone missed a
transcript with no summary (a subagent's, or a main one written without claude-agent-sdk);
they stay for the documents that carry no ``ENCRYPTED``, which no migration has to add.
Equality or a range rather than ``$exists``: SecantusDB uses a partial index only for a query
that implies its filter by equality or range, and ``$exists`` is neither (nor is ``$or``, so
each mark is a query of its own); MongoDB uses it for either. A query must repeat a condition
as it is here to be planned on its index.
"""

MAX_SEQ = 2**63 - 1
"""The highest sequence number: ``seq`` is stored as a BSON int64."""


def is_seq(value: object) -> TypeGuard[int]:
    """Whether ``value`` can be a stored ``seq``: an int (not a bool) from 0 to ``MAX_SEQ``.

    Positions a caller passes back (``after``) are checked with it: a bigger int cannot be
    sent in a query at all.
    """
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ


def key_fields(key: SessionKey) -> dict[str, str]:
    """The key fields as every document stores them (``subpath`` ``""`` is the main transcript)."""
    project_key, session_id, subpath = key_parts(key)
    return {"project_key": project_key, "session_id": session_id, "subpath": subpath}


def hole(ident: Mapping[str, str], seq: int) -> dict[str, Any]:
    """The placeholder that decides number ``seq`` as holding no entry, for good.

    Its unique ``dedupe`` keeps it clear of every uuid; ``entry_seq`` makes any later insert on
    that number fail.
    """
    return {**ident, "seq": seq, "dedupe": ObjectId(), "hole": True}


@dataclass(frozen=True)
class Collections:
    """A store's database and its three collections on one client."""

    database: Any
    entries: Any
    sessions: Any
    chunks: Any

    @classmethod
    def of(cls, client: Any, database: str, prefix: str) -> Collections:
        """The collections named ``{prefix}entries`` and so on in ``database``."""
        db = client[database]
        return cls(db, db[f"{prefix}entries"], db[f"{prefix}sessions"], db[f"{prefix}entry_chunks"])

    async def ensure_indexes(self) -> None:
        """Create the indexes; idempotent, safe to run from many processes at once."""
        await self.entries.create_indexes(
            [
                IndexModel([*KEY_INDEX, ("seq", ASCENDING)], name="entry_seq", unique=True),
                IndexModel([*KEY_INDEX, ("dedupe", ASCENDING)], name="entry_dedupe", unique=True),
            ]
        )
        await self.sessions.create_indexes(
            [
                IndexModel(KEY_INDEX, name="session_key", unique=True),
                IndexModel(LISTING_INDEX, name="session_listing"),
                IndexModel([("mtime", ASCENDING)], name="session_mtime"),
                *(
                    IndexModel(KEY_INDEX[:1], name=name, partialFilterExpression=mark)
                    for name, mark in ENCRYPTION_MARKS.items()
                ),
            ]
        )
        await self.chunks.create_indexes(
            [
                IndexModel(
                    [*KEY_INDEX, ("seq", ASCENDING), ("part", ASCENDING)],
                    name="chunk_part",
                    unique=True,
                )
            ]
        )


_DATABASE_FORBIDDEN = re.compile('[/\\\\. "$*<>:|?\\x00\\ud800-\\udfff]')
_RESERVED_DATABASES = frozenset({"admin", "local", "config"})
_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,48}")


def validate_database_name(name: object) -> str:
    """Return ``name`` if MongoDB accepts it as a database for session data.

    Raises:
        InvalidStoreOptionsError: Not a string, empty, too long, a forbidden character, or one
            of MongoDB's own databases (``admin``, ``local``, ``config``).
    """
    if not isinstance(name, str) or not name:
        raise InvalidStoreOptionsError("database must be a non-empty string")
    if _DATABASE_FORBIDDEN.search(name):  # first: a surrogate cannot even be measured in UTF-8
        raise InvalidStoreOptionsError(
            f"database {name!r} contains a character MongoDB forbids "
            '(/\\. "$*<>:|?, NUL or a UTF-16 surrogate)'
        )
    if len(name.encode()) >= 64:
        raise InvalidStoreOptionsError("database names must be shorter than 64 bytes")
    if name.lower() in _RESERVED_DATABASES:
        raise InvalidStoreOptionsError(f"database {name!r} is reserved by MongoDB")
    return name


def validate_collection_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is at most 48 letters, digits, ``_`` or ``-`` (``""`` included).

    Raises:
        InvalidStoreOptionsError: Anything else.
    """
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidStoreOptionsError(
            "collection_prefix must be at most 48 letters, digits, '_' or '-'"
        )
    return prefix
