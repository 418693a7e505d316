"""`MongoSessionStore`: Claude Agent SDK transcripts in MongoDB, any length, many writers.

Usage::

    from session_store_mongo import MongoSessionStore

    # From a URL: the store owns the client and closes it.
    async with MongoSessionStore.from_url("mongodb://localhost:27017") as store:
        await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user"}])

    # With a client you already have (pymongo AsyncMongoClient, or Motor): you close it.
    store = MongoSessionStore(client=client, database="agents")
    options = ClaudeAgentOptions(session_store=store)

Storage (``{prefix}`` is ``collection_prefix``, empty by default):

- ``{prefix}entries``: one document per entry: ``project_key``, ``session_id``, ``subpath``
  (``""`` for the main transcript), ``seq`` (reserved on the server), ``dedupe`` (the entry's
  ``uuid``, or a fresh ObjectId), ``entry`` (the entry itself), and ``escaped`` / ``chunked``
  when the entry needed escaping or did not fit one document. Unique indexes
  ``entry_seq`` on (key, ``seq``) and ``entry_dedupe`` on (key, ``dedupe``).
- ``{prefix}sessions``: one document per transcript: ``seq`` counter, ``landed`` (reserved
  entries whose writer finished), ``count``, ``bytes``, ``mtime``, ``created``, and for main
  transcripts ``summary``, ``summary_seq`` and ``summary_version``. Unique index
  ``session_key`` on (key); index ``session_mtime`` on ``mtime`` for retention.
- ``{prefix}entry_chunks``: parts of entries larger than one BSON document. Unique index
  ``chunk_part`` on (key, ``seq``, ``part``).

Every index and query starts with ``project_key, session_id``, a valid shard key for all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import bson
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.driver_info import DriverInfo
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from session_store_protocol.errors import (
    EntryTooLargeError,
    InvalidStoreOptionsError,
    StoreAuthenticationError,
    StoreClosedError,
    StoreUnavailableError,
)
from session_store_protocol.summaries import Fold, load_fold, optional_fold
from session_store_protocol.types import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from session_store_protocol.validation import (
    validate_entries,
    validate_key,
    validate_project_key,
    validate_session_key,
)

from .codec import decode_entry, encode_entry, entry_json
from .driver import maybe_await, pymongo_client
from .redact import hosts_of_url, password_of_url, redact_text

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "DEFAULT_DATABASE",
    "MongoSessionStore",
    "StoreStats",
    "key_fields",
]

log = logging.getLogger("session_store_mongo")

DEFAULT_DATABASE = "computeragent_sessions"
DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {
    # The SDK gives an append 60 s; fail well inside that, leaving room for an election.
    "serverSelectionTimeoutMS": 15_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 30_000,
    "retryWrites": True,
    "retryReads": True,
}
_MAIN = ""
_DOC_SLACK = 16 * 1024
"""Room left under the server's document limit for the key fields around an entry."""
_CHUNK_BYTES = 8 * 1024 * 1024
_IN_FLIGHT_LEASE_MS = 120_000
"""A summary that has not advanced for this long past a reservation whose writer never
reported takes that reservation as abandoned (its writer crashed) and folds past it."""
_SUMMARY_ATTEMPTS = 16
_DEFAULT_MAX_BSON = 16 * 1024 * 1024
_ENTRY_FIELDS = {"_id": 0, "entry": 1, "escaped": 1, "chunked": 1, "seq": 1}

_INDEXED: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], int]] = weakref.WeakKeyDictionary()
"""Per client: the (database, prefix) pairs whose indexes exist, with the server's BSON limit."""


def _defaults_not_in_url(url: str) -> dict[str, Any]:
    """Our client defaults, minus those the URL sets (keyword arguments would override it)."""
    query = urlsplit(url).query
    in_url = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    return {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in in_url}


def _distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("session-store-mongo")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1000)
    return int(value or 0)


@dataclass(frozen=True)
class StoreStats:
    """Totals over a store's database, for operators (``session-store-mongo stats``)."""

    sessions: int
    transcripts: int
    entries: int
    bytes: int
    largest: list[dict[str, Any]]


@dataclass
class _Prepared:
    """One validated entry of a batch, encoded and ready to insert."""

    index: int
    entry: SessionStoreEntry
    stored: dict[str, Any]
    escaped: bool
    dedupe: Any
    size: int
    chunks: list[bytes] | None


class MongoSessionStore:
    """A ``SessionStore`` on MongoDB: one document per entry, one per transcript.

    Append validates the whole batch, reserves a block of sequence numbers with one atomic
    ``$inc`` upsert, inserts the entries with one unordered ``insert_many`` (a duplicate ``uuid``
    is the idempotent path), then folds the main transcript's summary with a compare-and-set.
    Load is one indexed query sorted by ``seq``. See the module docstring for the layout.
    """

    def __init__(
        self,
        *,
        client: Any | None = None,
        url: str | None = None,
        database: str = DEFAULT_DATABASE,
        collection_prefix: str = "",
        client_options: Mapping[str, Any] | None = None,
        create_indexes: bool = True,
        max_entry_bytes: int | None = None,
    ) -> None:
        """Create a store; nothing connects until the first operation (or ``connect()``).

        Args:
            client: A ``pymongo.AsyncMongoClient`` or Motor ``AsyncIOMotorClient`` you own.
            url: A MongoDB URL; the store then creates, owns and closes its client.
            database: Database holding the collections.
            collection_prefix: Prepended to the collection names (``entries``, ``sessions``,
                ``entry_chunks``).
            client_options: Extra ``AsyncMongoClient`` keyword arguments (only with ``url``).
            create_indexes: Create missing indexes on first use; turn off where the
                application user may not, and run ``ensure_indexes()`` or the CLI instead.
            max_entry_bytes: Refuse any entry whose BSON exceeds this many bytes. Without it,
                entries above the server's document limit are stored in chunks.

        Raises:
            InvalidStoreOptionsError: Neither or both of ``client`` and ``url``, or bad values.
        """
        if (client is None) == (url is None):
            raise InvalidStoreOptionsError("pass exactly one of client= or url=")
        if client_options and client is not None:
            raise InvalidStoreOptionsError("client_options apply only to a store built from url=")
        if max_entry_bytes is not None and (
            not isinstance(max_entry_bytes, int) or max_entry_bytes <= 0
        ):
            raise InvalidStoreOptionsError("max_entry_bytes must be a positive integer")
        self._secrets: tuple[str, ...] = ()
        if url is not None:
            from pymongo import AsyncMongoClient

            options = {**_defaults_not_in_url(url), **(client_options or {})}
            password = password_of_url(url)
            self._secrets = (password,) if password else ()
            self._hosts = hosts_of_url(url)
            try:
                client = AsyncMongoClient(
                    url,
                    driver=DriverInfo("session-store-mongo", _distribution_version()),
                    **options,
                )
            except (PyMongoError, TypeError, ValueError) as exc:
                raise InvalidStoreOptionsError(
                    f"cannot create a MongoDB client for {self._hosts}: "
                    f"{redact_text(str(exc), self._secrets)}"
                ) from None
        else:
            self._hosts = _hosts_of_client(client)
            _append_driver_info(client)
        self._client: Any = cast(Any, client)
        self._owns_client = url is not None
        self._closed = False
        self._db: Any = self._client[database]
        self._database = database
        self._prefix = collection_prefix
        self._entries = self._db[f"{collection_prefix}entries"]
        self._sessions = self._db[f"{collection_prefix}sessions"]
        self._chunks = self._db[f"{collection_prefix}entry_chunks"]
        self._create_indexes = create_indexes
        self._max_entry_bytes = max_entry_bytes
        self._max_bson: int | None = None
        self._ready_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MongoSessionStore:
        """Create a store that owns a new client for ``url`` (see ``__init__`` for kwargs)."""
        return cls(url=url, **kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def database(self) -> str:
        """The database this store writes to."""
        return self._database

    @property
    def hosts(self) -> str:
        """The hosts this store talks to, without credentials (for messages and logs)."""
        return self._hosts

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client if this store created it; later calls raise ``StoreClosedError``."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await maybe_await(self._client.close())

    async def connect(self) -> None:
        """Check the server now (and create indexes unless disabled), instead of on first use.

        Raises:
            StoreUnavailableError: The server cannot be reached, named by host.
            StoreAuthenticationError: The server refused the credentials.
        """
        async with self._guard("connect"):
            await self._db.command("ping")
        await self._ready()

    async def ensure_indexes(self) -> None:
        """Create the store's indexes; idempotent, safe to run from many processes at once."""
        async with self._guard("ensure_indexes"):
            await self._entries.create_indexes(
                [
                    IndexModel([*_KEY_INDEX, ("seq", ASCENDING)], name="entry_seq", unique=True),
                    IndexModel(
                        [*_KEY_INDEX, ("dedupe", ASCENDING)], name="entry_dedupe", unique=True
                    ),
                ]
            )
            await self._sessions.create_indexes(
                [
                    IndexModel(_KEY_INDEX, name="session_key", unique=True),
                    IndexModel([("mtime", ASCENDING)], name="session_mtime"),
                ]
            )
            await self._chunks.create_indexes(
                [
                    IndexModel(
                        [*_KEY_INDEX, ("seq", ASCENDING), ("part", ASCENDING)],
                        name="chunk_part",
                        unique=True,
                    )
                ]
            )

    async def _ready(self) -> int:
        """Create indexes once per client and database, and learn the document size limit."""
        if self._closed:
            raise StoreClosedError("this MongoSessionStore is closed")
        if self._max_bson is not None:
            return self._max_bson
        async with self._ready_lock:
            known = _INDEXED.setdefault(self._client, {})
            marker = (self._database, self._prefix)
            if marker not in known:
                if self._create_indexes:
                    await self.ensure_indexes()
                known[marker] = await self._server_max_bson()
            self._max_bson = known[marker]
            return self._max_bson

    async def _server_max_bson(self) -> int:
        try:
            async with self._guard("hello"):
                hello = await self._db.command("hello")
        except StoreUnavailableError:
            raise
        except NotImplementedError:  # mongomock has no commands
            return _DEFAULT_MAX_BSON
        return int(hello.get("maxBsonObjectSize", _DEFAULT_MAX_BSON))

    def _guard(self, operation: str) -> _ErrorGuard:
        if self._closed:
            raise StoreClosedError("this MongoSessionStore is closed")
        return _ErrorGuard(operation, self._hosts, self._secrets)

    # -- append ----------------------------------------------------------------------------

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Append entries in order, skipping those whose ``uuid`` the transcript holds.

        Raises:
            InvalidKeyError: Malformed key; nothing written.
            InvalidEntryError: Malformed batch, or an entry over ``max_entry_bytes`` (the error
                names it); nothing of the batch written.
            StoreUnavailableError: The server failed; appending the same batch again is safe.
        """
        clean = validate_key(key)
        batch = validate_entries(entries)
        if not batch:
            return
        max_bson = await self._ready()
        prepared = [self._prepare(i, entry, max_bson) for i, entry in enumerate(batch)]
        ident = key_fields(clean)
        reserved = await self._reserve(ident, prepared)
        end = int(reserved["seq"])
        start = end - len(prepared) + 1
        try:
            inserted = await self._insert(ident, prepared, start)
        except Exception:
            await self._release(ident, prepared, start)
            raise
        skipped = [p for p in prepared if p.index not in inserted]
        if ident["subpath"] == _MAIN:
            folded = [(start + p.index, p.entry) for p in prepared if p.index in inserted]
            await self._settle_main(clean, ident, reserved, prepared, start, folded, skipped)
        elif skipped:
            # Best effort like the summary: the entries are stored, only the count is at stake.
            with contextlib.suppress(PyMongoError):
                await self._sessions.update_one(ident, _uncount(skipped))

    async def _release(self, ident: dict[str, str], prepared: list[_Prepared], start: int) -> None:
        """After a failed insert, report the block landed and uncount what did not land.

        Best effort: if the server is unreachable this fails too (logged), and the summary
        waits for the lease that covers crashed writers.
        """
        end = start + len(prepared) - 1
        try:
            stored = self._entries.find({**ident, "seq": {"$gte": start, "$lte": end}}, {"seq": 1})
            landed = {doc["seq"] - start async for doc in stored}
            missing = [p for p in prepared if p.index not in landed]
            update = _uncount(missing)
            update.setdefault("$inc", {})["landed"] = len(prepared)
            await self._sessions.update_one(ident, update)
        except PyMongoError as exc:
            log.warning(
                "append on %s: could not release seq %d-%d after a failed insert: %s",
                self._hosts,
                start,
                end,
                redact_text(str(exc).splitlines()[0], self._secrets),
            )

    def _prepare(self, index: int, entry: SessionStoreEntry, max_bson: int) -> _Prepared:
        uuid = entry.get("uuid")
        where = f"entry {index}" + (f" (uuid {uuid!r})" if uuid is not None else "")
        stored, escaped = encode_entry(dict(entry), where)
        size = len(bson.encode({"entry": stored}))
        if self._max_entry_bytes is not None and size > self._max_entry_bytes:
            raise EntryTooLargeError(
                f"{where} is {size} bytes, above max_entry_bytes={self._max_entry_bytes}; "
                "nothing of the batch was stored"
            )
        chunks = None
        if size > max_bson - _DOC_SLACK:
            raw = entry_json(dict(entry))
            chunks = [raw[i : i + _CHUNK_BYTES] for i in range(0, len(raw), _CHUNK_BYTES)]
            # What operators see of it in the entries collection; load reassembles the chunks.
            visible = {k: v for k, v in entry.items() if k in ("type", "uuid", "timestamp")}
            stored, escaped = encode_entry(visible, where)
        return _Prepared(
            index, entry, stored, escaped, uuid if uuid is not None else ObjectId(), size, chunks
        )

    async def _reserve(self, ident: dict[str, str], prepared: list[_Prepared]) -> dict[str, Any]:
        """Reserve ``len(prepared)`` sequence numbers with one atomic ``$inc``; return the doc.

        The transcript's document is created first, once, by a separate upsert that changes no
        counter: some servers answer two racing ``$inc`` upserts with no document after
        applying both, which would leave a reservation nobody knows about.

        Each reservation signs the document with a fresh token. If the reply never arrives
        (or carries a write-concern error) and the document still bears our token, the block
        is ours and still the last one, so it is released instead of waiting for the lease.
        """
        token = ObjectId()
        update = {
            "$inc": {
                "seq": len(prepared),
                "count": len(prepared),
                "bytes": sum(p.size for p in prepared),
            },
            "$set": {"reserved_by": token},
            "$currentDate": {"mtime": True},
        }
        try:
            return await self._reserve_signed(ident, update)
        except StoreUnavailableError:
            with contextlib.suppress(PyMongoError):
                doc = await self._sessions.find_one(ident, {"seq": 1, "reserved_by": 1})
                if doc is not None and doc.get("reserved_by") == token:
                    await self._release(ident, prepared, int(doc["seq"]) - len(prepared) + 1)
            raise

    async def _reserve_signed(
        self, ident: dict[str, str], update: dict[str, Any]
    ) -> dict[str, Any]:
        async with self._guard("append"):
            for _ in range(3):
                doc: dict[str, Any] | None = await self._sessions.find_one_and_update(
                    ident, update, return_document=ReturnDocument.AFTER
                )
                if doc is not None:
                    return doc
                # Another writer may create it first: that is what we wanted.
                with contextlib.suppress(DuplicateKeyError):
                    await self._sessions.update_one(
                        ident,
                        {
                            "$setOnInsert": {
                                "seq": 0,
                                "count": 0,
                                "bytes": 0,
                                "landed": 0,
                                "created": datetime.now(timezone.utc),
                                "mtime": datetime.now(timezone.utc),
                            }
                        },
                        upsert=True,
                    )
        raise StoreUnavailableError(
            f"append on {self._hosts}: could not reserve sequence numbers for {ident!r}"
        )

    async def _insert(
        self, ident: dict[str, str], prepared: list[_Prepared], start: int
    ) -> set[int]:
        """Insert the batch unordered; return the indexes stored (duplicates are skipped)."""
        docs = []
        for p in prepared:
            doc = {**ident, "seq": start + p.index, "dedupe": p.dedupe, "entry": p.stored}
            if p.escaped:
                doc["escaped"] = True
            if p.chunks is not None:
                doc["chunked"] = len(p.chunks)
            docs.append(doc)
        chunked = [p for p in prepared if p.chunks is not None]
        async with self._guard("append"):
            if chunked:
                await self._insert_chunks(ident, chunked, start)
            inserted = set(range(len(docs)))
            try:
                await self._entries.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                duplicates = await self._sort_write_errors(ident, docs, exc)
                inserted -= duplicates
            # An entry whose uuid was already stored must not leave its chunks behind.
            orphans = [start + p.index for p in chunked if p.index not in inserted]
            if orphans:
                await self._chunks.delete_many({**ident, "seq": {"$in": orphans}})
        return inserted

    async def _sort_write_errors(
        self, ident: dict[str, str], docs: list[dict[str, Any]], exc: BulkWriteError
    ) -> set[int]:
        """Return the batch indexes skipped as duplicates; raise for any other write error.

        A duplicate ``_id``, or a duplicate ``uuid`` held by a document with our ``_id``, is an
        insert of ours that landed before the driver retried it: stored, not skipped.
        """
        for concern in exc.details.get("writeConcernErrors", []):
            # The entries are on the primary; failing would make the SDK retry and duplicate
            # entries without uuid. Say so loudly instead: durability is below what was asked.
            log.warning(
                "append on %s: entries stored, but write concern not satisfied: %s",
                self._hosts,
                concern.get("errmsg", concern),
            )
        duplicates: dict[int, Any] = {}
        for error in exc.details.get("writeErrors", []):
            violated = _violated_index(error)
            if violated == "dedupe":
                duplicates[error["index"]] = docs[error["index"]]["_id"]
            elif violated == "seq":
                await self._repair_counter(ident)
                raise StoreUnavailableError(
                    f"append on {self._hosts}: the sequence counter of {ident!r} was behind its "
                    "stored entries (restored or edited by hand?); it is repaired, append again"
                ) from None
            elif violated != "_id":
                raise exc
        if duplicates:
            ours = self._entries.find(
                {**ident, "_id": {"$in": list(duplicates.values())}}, {"_id": 1}
            )
            landed = {doc["_id"] async for doc in ours}
            return {index for index, oid in duplicates.items() if oid not in landed}
        return set()

    async def _repair_counter(self, ident: dict[str, str]) -> None:
        highest = await self._entries.find_one(ident, {"seq": 1}, sort=[("seq", DESCENDING)])
        if highest is not None:
            await self._sessions.update_one(ident, {"$max": {"seq": highest["seq"]}})

    async def _insert_chunks(
        self, ident: dict[str, str], chunked: list[_Prepared], start: int
    ) -> None:
        for p in chunked:
            assert p.chunks is not None
            await self._chunks.insert_many(
                [
                    {**ident, "seq": start + p.index, "part": n, "data": bson.Binary(part)}
                    for n, part in enumerate(p.chunks)
                ],
                ordered=True,
            )

    # -- summaries -------------------------------------------------------------------------

    async def _settle_main(
        self,
        key: SessionKey,
        ident: dict[str, str],
        reserved: dict[str, Any],
        prepared: list[_Prepared],
        start: int,
        folded: list[tuple[int, SessionStoreEntry]],
        skipped: list[_Prepared],
    ) -> None:
        """Report the block as landed and fold it into the summary, across processes.

        ``summary_seq`` means: every entry with a lower or equal ``seq`` is in the summary.
        A writer whose block follows ``summary_seq`` folds its own entries (compare-and-set on
        ``summary_version``); a writer that sees every reservation landed (``landed >= seq``)
        catches up from the stored entries; anyone else leaves it to the writer still in flight.
        A block overtaken while in flight (only after an abandoned reservation) triggers a
        full refold, so no entry is ever silently missing from the summary.
        """
        end = start + len(prepared) - 1
        fold = optional_fold()
        landing = _uncount(skipped)
        landing.setdefault("$inc", {})["landed"] = end - start + 1
        landed = False
        try:
            async with self._guard("append"):
                if fold is not None and reserved.get("summary_seq", 0) == start - 1:
                    summary = fold(_summary_of(reserved, key), key, [e for _, e in folded])
                    doc = await self._cas_summary(ident, reserved, summary, end, landing)
                    if doc is not None:  # landed and folded in one write: the common case
                        landed = True
                        await self._catch_up(key, ident, doc, fold)
                        return
                doc = await self._sessions.find_one_and_update(
                    ident, landing, return_document=ReturnDocument.AFTER
                )
                landed = True
                if fold is None or doc is None:
                    return
                if folded and doc.get("summary_seq", 0) >= start:
                    await self._catch_up(key, ident, doc, fold, refold=True)
                    return
                doc = await self._fold_own(key, ident, doc, fold, start, end, folded)
                await self._catch_up(key, ident, doc, fold)
        except StoreUnavailableError as exc:
            # The entries are stored: failing the append would make the SDK retry it and
            # duplicate entries without uuid. The summary catches up on a later read or write.
            log.warning("append on %s: entries stored, summary deferred: %s", self._hosts, exc)
            if not landed:
                await self._release(ident, prepared, start)

    async def _cas_summary(
        self,
        ident: dict[str, str],
        doc: dict[str, Any],
        summary: SessionSummaryEntry,
        upto: int,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Write ``summary`` as folded through ``upto`` if nobody wrote one since ``doc``."""
        update: dict[str, Any] = {key: dict(value) for key, value in (extra or {}).items()}
        stored, escaped = encode_entry(summary["data"], "summary")
        update.setdefault("$set", {}).update(
            {"summary": stored, "summary_escaped": escaped, "summary_seq": upto}
        )
        update.setdefault("$inc", {})["summary_version"] = 1
        update["$currentDate"] = {"summary_at": True}
        filter_ = {**ident, "summary_version": doc.get("summary_version", 0)}
        if "summary_version" not in doc:
            filter_["summary_version"] = {"$exists": False}
        result: dict[str, Any] | None = await self._sessions.find_one_and_update(
            filter_, update, return_document=ReturnDocument.AFTER
        )
        return result

    async def _fold_own(
        self,
        key: SessionKey,
        ident: dict[str, str],
        doc: dict[str, Any],
        fold: Fold,
        start: int,
        end: int,
        folded: list[tuple[int, SessionStoreEntry]],
    ) -> dict[str, Any]:
        """Fold this writer's block while it is next in line; return the latest session doc."""
        for _ in range(_SUMMARY_ATTEMPTS):
            if doc.get("summary_seq", 0) != start - 1:
                return doc
            summary = fold(_summary_of(doc, key), key, [e for _, e in folded])
            written = await self._cas_summary(ident, doc, summary, end)
            if written is not None:
                return written
            doc = await self._sessions.find_one(ident) or doc
        return doc

    async def _catch_up(
        self,
        key: SessionKey,
        ident: dict[str, str],
        doc: dict[str, Any],
        fold: Fold,
        *,
        refold: bool = False,
    ) -> dict[str, Any]:
        """Fold stored entries the summary lacks, once no reservation is in flight.

        With ``refold``, rebuild from the first entry instead of from ``summary_seq``.

        Returns:
            The latest session document this step saw or wrote.
        """
        for _ in range(_SUMMARY_ATTEMPTS):
            counter, landed = int(doc.get("seq", 0)), int(doc.get("landed", 0))
            folded_upto = 0 if refold else int(doc.get("summary_seq", 0))
            # A summary stuck behind a reservation for a whole lease: its writer died.
            last_progress = doc.get("summary_at", doc.get("created"))
            abandoned = _ms(last_progress) < time.time() * 1000 - _IN_FLIGHT_LEASE_MS
            if folded_upto >= counter or not (refold or landed >= counter or abandoned):
                return doc
            previous = None if refold else _summary_of(doc, key)
            pending = await self._read_entries(ident, {"$gt": folded_upto, "$lte": counter})
            summary = fold(previous, key, pending)
            repair = {"$max": {"landed": counter}} if abandoned else None
            written = await self._cas_summary(ident, doc, summary, counter, repair)
            if written is not None:
                return written
            latest = await self._sessions.find_one(ident)
            if latest is None:  # deleted meanwhile
                return doc
            doc = latest
        return doc

    # -- load ------------------------------------------------------------------------------

    async def _read_entries(
        self, ident: dict[str, str], seq_range: dict[str, int] | None = None
    ) -> list[SessionStoreEntry]:
        filter_: dict[str, Any] = dict(ident)
        if seq_range is not None:
            filter_["seq"] = seq_range
        entries: list[Any] = []
        chunked: dict[int, int] = {}
        cursor = self._entries.find(filter_, _ENTRY_FIELDS).sort("seq", ASCENDING)
        async for doc in cursor:
            if "chunked" in doc:
                chunked[len(entries)] = doc["seq"]
            entries.append(decode_entry(doc["entry"], doc.get("escaped", False)))
        if chunked:
            await self._reassemble(ident, entries, chunked)
        return entries

    async def _reassemble(
        self, ident: dict[str, str], entries: list[SessionStoreEntry], chunked: dict[int, int]
    ) -> None:
        parts: dict[int, list[bytes]] = {}
        cursor = self._chunks.find({**ident, "seq": {"$in": list(chunked.values())}}).sort(
            [("seq", ASCENDING), ("part", ASCENDING)]
        )
        async for doc in cursor:
            parts.setdefault(doc["seq"], []).append(bytes(doc["data"]))
        for position, seq in chunked.items():
            entries[position] = json.loads(b"".join(parts[seq]))

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return the transcript in append order, or ``None`` if nothing was ever stored."""
        ident = key_fields(validate_key(key))
        await self._ready()
        async with self._guard("load"):
            entries = await self._read_entries(ident)
        return entries or None

    # -- listing ---------------------------------------------------------------------------

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """List the project's main transcripts with their last storage write time (epoch ms)."""
        project = validate_project_key(project_key)
        await self._ready()
        async with self._guard("list_sessions"):
            cursor = self._sessions.find(
                {"project_key": project, "subpath": _MAIN, "count": {"$gt": 0}},
                {"_id": 0, "session_id": 1, "mtime": 1},
            )
            return [
                {"session_id": doc["session_id"], "mtime": _ms(doc["mtime"])}
                async for doc in cursor
            ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Return the main transcripts' summaries, catching up any left behind.

        Raises:
            SummariesUnavailableError: claude-agent-sdk is not installed (it owns the fold).
        """
        project = validate_project_key(project_key)
        fold = load_fold()
        await self._ready()
        summaries: list[SessionSummaryEntry] = []
        async with self._guard("list_session_summaries"):
            cursor = self._sessions.find(
                {"project_key": project, "subpath": _MAIN, "count": {"$gt": 0}}
            )
            docs = [doc async for doc in cursor]
            for doc in docs:
                key: SessionKey = {"project_key": project, "session_id": doc["session_id"]}
                ident = key_fields(key)
                if doc.get("summary_seq", 0) < doc.get("seq", 0):
                    doc = await self._catch_up(key, ident, doc, fold)
                summary = _summary_of(doc, key)
                if summary is not None:
                    summaries.append(summary)
        return summaries

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """List the subpaths stored under a session, sorted."""
        clean = validate_session_key(key)
        await self._ready()
        async with self._guard("list_subkeys"):
            cursor = self._sessions.find(
                {**clean, "subpath": {"$ne": _MAIN}, "count": {"$gt": 0}},
                {"_id": 0, "subpath": 1},
            )
            return sorted([doc["subpath"] async for doc in cursor])

    async def size(self, key: SessionKey) -> int:
        """Return how many entries the transcript holds (0 for an unknown key)."""
        ident = key_fields(validate_key(key))
        await self._ready()
        async with self._guard("size"):
            doc = await self._sessions.find_one(ident, {"count": 1})
        return int(doc["count"]) if doc else 0

    # -- deletion and retention ------------------------------------------------------------

    async def delete(self, key: SessionKey) -> None:
        """Delete a transcript; a main key takes its subagent transcripts with it."""
        clean = validate_key(key)
        scope: dict[str, str] = {
            "project_key": clean["project_key"],
            "session_id": clean["session_id"],
        }
        if "subpath" in clean:
            scope["subpath"] = clean["subpath"]
        await self._ready()
        async with self._guard("delete"):
            # Keep each transcript's document as an empty tombstone: its sequence counter must
            # never restart below entries a racing writer may still be inserting.
            await self._sessions.update_many(
                scope,
                {
                    "$set": {"count": 0, "bytes": 0},
                    "$unset": {"summary": "", "summary_escaped": ""},
                    "$currentDate": {"mtime": True},
                },
            )
            await self._entries.delete_many(scope)
            await self._chunks.delete_many(scope)

    async def prune_inactive(
        self, older_than: timedelta | float, *, dry_run: bool = False
    ) -> list[SessionListSubkeysKey]:
        """Delete whole sessions (main and subagent transcripts) idle for longer than that.

        Single entries are never expired: that would truncate a live transcript.

        Args:
            older_than: Idle time, as a ``timedelta`` or in seconds.
            dry_run: Only return what would be deleted.

        Returns:
            The sessions deleted (or that would be).
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise InvalidStoreOptionsError("older_than must be a non-negative duration")
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        await self._ready()
        async with self._guard("prune_inactive"):
            cursor = await maybe_await(
                self._sessions.aggregate(
                    [
                        {
                            "$group": {
                                "_id": {"project_key": "$project_key", "session_id": "$session_id"},
                                "mtime": {"$max": "$mtime"},
                            }
                        },
                        {"$match": {"mtime": {"$lt": cutoff}}},
                    ]
                )
            )
            idle: list[SessionListSubkeysKey] = [doc["_id"] async for doc in cursor]
            if not dry_run:
                for session in idle:
                    await self._entries.delete_many(session)
                    await self._chunks.delete_many(session)
                    await self._sessions.delete_many(session)
        return idle

    async def stats(self, *, largest: int = 10) -> StoreStats:
        """Count sessions, transcripts, entries and bytes; list the largest sessions."""
        await self._ready()
        async with self._guard("stats"):
            cursor = await maybe_await(
                self._sessions.aggregate(
                    [
                        {
                            "$group": {
                                "_id": {"project_key": "$project_key", "session_id": "$session_id"},
                                "transcripts": {"$sum": 1},
                                "entries": {"$sum": "$count"},
                                "bytes": {"$sum": "$bytes"},
                                "mtime": {"$max": "$mtime"},
                            }
                        },
                        {"$sort": {"bytes": DESCENDING}},
                    ]
                )
            )
            groups = [doc async for doc in cursor]
        return StoreStats(
            sessions=len(groups),
            transcripts=sum(g["transcripts"] for g in groups),
            entries=sum(g["entries"] for g in groups),
            bytes=sum(g["bytes"] for g in groups),
            largest=[
                {**g["_id"], "entries": g["entries"], "bytes": g["bytes"], "mtime": _ms(g["mtime"])}
                for g in groups[:largest]
            ],
        )


_KEY_INDEX: Sequence[tuple[str, int]] = [
    ("project_key", ASCENDING),
    ("session_id", ASCENDING),
    ("subpath", ASCENDING),
]


def key_fields(key: SessionKey) -> dict[str, str]:
    """The key fields as every document stores them (``subpath`` ``""`` is the main transcript)."""
    return {
        "project_key": key["project_key"],
        "session_id": key["session_id"],
        "subpath": key.get("subpath", _MAIN),
    }


def _uncount(skipped: list[_Prepared]) -> dict[str, Any]:
    """The update that takes entries skipped as duplicates back out of the counts."""
    if not skipped:
        return {}
    return {"$inc": {"count": -len(skipped), "bytes": -sum(p.size for p in skipped)}}


def _summary_of(doc: Mapping[str, Any], key: SessionKey) -> SessionSummaryEntry | None:
    """The stored summary; its ``mtime`` is the transcript's only when it is caught up.

    A summary still behind (writers in flight) carries the older time it was last written,
    so the SDK's staleness check sees it is behind and loads that transcript instead.
    """
    if "summary" not in doc:
        return None
    data = decode_entry(doc["summary"], doc.get("summary_escaped", False))
    caught_up = doc.get("summary_seq", 0) >= doc.get("seq", 0)
    mtime = _ms(doc.get("mtime") if caught_up else doc.get("summary_at"))
    return {"session_id": key["session_id"], "mtime": mtime, "data": data}


_INDEX_NAME = re.compile(r"index: (\S+)")


def _violated_index(error: Mapping[str, Any]) -> str:
    """Name which unique key a duplicate-key write error hit: dedupe, seq, _id or other."""
    if error.get("code") != 11000:
        return "other"
    fields = list(error.get("keyPattern") or {})
    if not fields:
        match = _INDEX_NAME.search(str(error.get("errmsg", "")))
        name = match.group(1) if match else str(error.get("errmsg", ""))
        fields = [f for f in ("dedupe", "seq", "_id") if f in name]
    for field in ("dedupe", "seq", "_id"):
        if field in fields:
            return field
    return "other"


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
            append(DriverInfo("session-store-mongo", _distribution_version()))
        except Exception as exc:  # metadata is a courtesy; never fail a store on it
            log.debug("could not append driver metadata: %s", exc)


class _ErrorGuard:
    """Turn driver errors into the protocol's typed errors, naming the host, never a secret."""

    def __init__(self, operation: str, hosts: str, secrets: tuple[str, ...]) -> None:
        self._operation = operation
        self._hosts = hosts
        self._secrets = secrets

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, PyMongoError):
            return
        # The driver appends its whole topology description; the host is named already.
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        message = redact_text(first_line.split(", Topology Description:")[0], self._secrets)
        text = f"{self._operation} on {self._hosts} failed: {type(exc).__name__}: {message}"
        if isinstance(exc, OperationFailure) and exc.code in (13, 18):
            raise StoreAuthenticationError(text) from None
        raise StoreUnavailableError(text) from None
