"""`MongoSessionStore`: Claude Agent SDK transcripts in MongoDB, any length, many writers.

Usage::

    from session_store_mongo import MongoSessionStore

    # From a URL: the store owns the client and closes it.
    async with MongoSessionStore.from_url("mongodb://localhost:27017") as store:
        await store.append({"project_key": "p", "session_id": "s"}, [{"type": "user"}])
        async for item in store.iter_entries({"project_key": "p", "session_id": "s"}):
            print(item.seq, item.entry)          # any length, bounded memory

    # With a client you already have (pymongo AsyncMongoClient, or Motor): you close it.
    store = MongoSessionStore(client=client, database="agents")
    options = ClaudeAgentOptions(session_store=store)

    # Encrypted at rest, one data key per project (pip install 'session-store-mongo[encryption]').
    store = MongoSessionStore(url=url, encryption=EncryptionSettings(kms_providers=...))
    await store.forget("project")   # destroys the project's data key: unreadable for good

This module is the public API; each concept lives in a module named after it: ``layout``
(collections, indexes, key fields), ``client`` (the driver client, error translation),
``codec`` (entries to BSON and chunks), ``append`` (reserve, insert, settle), ``summary``
(folding and catching up summaries), ``reader`` (streaming a transcript in order),
``follow`` (a transcript live, as other processes append), ``ownership`` (writing only
into collections that hold nothing but the store's own data), ``encryption`` (settings and
data keys) and ``sealer`` (what of a document is encrypted).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import OperationFailure

from session_store_protocol.errors import (
    InvalidKeyError,
    InvalidStoreOptionsError,
    StoreClosedError,
    StoreUnavailableError,
)
from session_store_protocol.summaries import Fold, load_fold
from session_store_protocol.types import (
    MAIN_SUBPATH,
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
)
from session_store_protocol.validation import (
    validate_key,
    validate_project_key,
    validate_session_key,
)

from .append import Appender, NewTranscript
from .client import DEFAULT_CLIENT_OPTIONS, ClientFacts, Connection, client_facts, refused_to_user
from .codec import checked_mtime, epoch_ms
from .driver import has_client_bulk_write
from .encryption import EncryptionSettings, keyring_for
from .follow import DEFAULT_RECONNECT_TIMEOUT, Follower, Position
from .layout import (
    DEFAULT_COLLECTION_PREFIX,
    Collections,
    is_seq,
    key_fields,
    validate_collection_prefix,
    validate_database_name,
)
from .ownership import check_owned
from .reader import StoredEntry, iter_stored, read_entries
from .sealer import SEALED, SUMMARY_SEALED, Sealer, key_destroyed
from .session_totals import SessionTotals, StoreStats, idle_sessions, prune, store_stats
from .summary import DEFAULT_LEASE_MS, Summaries, may_hold_entries, summary_view

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "DEFAULT_COLLECTION_PREFIX",
    "DEFAULT_DATABASE",
    "Forgotten",
    "MongoSessionStore",
    "NewTranscript",
    "SessionTotals",
    "StoreStats",
    "StoredEntry",
]

DEFAULT_DATABASE = "computeragent_sessions"
STREAM_BATCH = 1000
"""Entries per reply when streaming: a few MB of typical entries, 16 MB at the very most."""
_DEFAULT_MAX_BSON = 16 * 1024 * 1024
_BULK_WRITE_WIRE_VERSION = 25
"""MongoDB 8.0, the first with the client ``bulkWrite`` command."""
_POSITIONS = {"count": 1, "settled": 1, "seq": 1}
"""What ``may_hold_entries`` reads of a session document."""


_LISTED = {**_POSITIONS, "forgotten": 1}
"""What ``_listed`` reads of a session document."""


def _main_transcripts(project_key: str) -> dict[str, str]:
    """The listings' filter: a project's main transcripts, on ``session_listing`` exactly.

    Equalities only, so that every planner bounds the index with them; ``_listed`` then
    leaves out what no listing shows.
    """
    return {"project_key": project_key, "subpath": MAIN_SUBPATH}


def _listed(doc: Mapping[str, Any]) -> bool:
    """Whether a listing shows a transcript: it may hold entries, and its key still exists."""
    return may_hold_entries(doc) and "forgotten" not in doc


@dataclass(frozen=True)
class _Wiring:
    """A store's collections, sealer (if encrypted) and append path on one client."""

    client: Any
    collections: Collections
    sealer: Sealer | None
    summaries: Summaries
    appender: Appender


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` did to a project."""

    project_key: str
    keys: int
    """Data keys destroyed (0: nothing of the project was encrypted, nothing changed)."""
    transcripts: int
    """Transcripts (main and subagent) now unreadable."""
    forgotten_at: datetime | None = None
    """With no key destroyed: when an earlier ``forget`` made the project unreadable (its
    latest), or ``None`` if nothing of it was ever forgotten."""
    stored_in_clear: tuple[SessionKey, ...] = ()
    """Transcripts of the project a store without encryption settings wrote: no key reaches
    them, so they stay readable and listed, and are not counted in ``transcripts``; ``delete``
    removes them."""


_VISIBLE = {"forgotten": {"$exists": False}}
"""Transcripts whose data key was not destroyed."""


class MongoSessionStore:
    """A ``SessionStore`` on MongoDB: one document per entry, one per transcript.

    Append validates the whole batch, reserves a block of sequence numbers with one atomic
    ``$inc`` upsert, inserts the entries (a duplicate ``uuid`` is the idempotent path), then
    settles the block's counts (and folds a main transcript's summary) with one
    compare-and-set; on MongoDB 8.0+ the inserts and the settling go as one ordered
    ``bulkWrite``: two round trips. Load is one indexed query sorted by ``seq``. ``layout``
    describes the collections, ``summary`` why the counts cannot drift.
    """

    def __init__(
        self,
        *,
        client: Any | None = None,
        url: str | None = None,
        connection: Connection | None = None,
        database: str = DEFAULT_DATABASE,
        collection_prefix: str = DEFAULT_COLLECTION_PREFIX,
        client_options: Mapping[str, Any] | None = None,
        create_indexes: bool = True,
        max_entry_bytes: int | None = None,
        summary_lease_ms: int = DEFAULT_LEASE_MS,
        encryption: EncryptionSettings | None = None,
        bulk_write: bool = True,
        transactions: bool = True,
    ) -> None:
        """Create a store; nothing connects until the first operation (or ``connect()``).

        Args:
            client: A ``pymongo.AsyncMongoClient`` or Motor ``AsyncIOMotorClient`` you own.
            url: A MongoDB URL; the store then creates, owns and closes its client.
            connection: A ``client.Connection`` shared with other stores (the builder's);
                whoever created it closes it.
            database: Database holding the collections.
            collection_prefix: Prepended to the collection names (``entries``, ``sessions``,
                ``entry_chunks``); ``""`` gives the names of version 0.1.
            client_options: Extra ``AsyncMongoClient`` keyword arguments (only with ``url``).
            create_indexes: Create missing indexes on first use; turn off where the
                application user may not, and run ``ensure_indexes()`` or the CLI instead.
            max_entry_bytes: Refuse any entry whose BSON exceeds this many bytes. Without it,
                entries above the server's document limit are stored in chunks.
            summary_lease_ms: How long reserved sequence numbers may stay undecided (their
                writer crashed or lost contact) before whoever settles next fences them and
                settles past them.
            encryption: Encrypt entries, summaries and chunks at rest under one data key per
                tenant (``EncryptionSettings``); needs PyMongo's ``AsyncMongoClient``.
            bulk_write: Where the server takes the ``bulkWrite`` command (MongoDB 8.0+), send
                an append's entries and the write that settles them as one ordered command:
                2 round trips instead of 3. ``False`` always sends them separately.
            transactions: Where the deployment takes transactions (a replica set or a sharded
                cluster), ``append_new`` creates transcripts whole in one transaction, their
                documents already settled. ``False`` always creates them step by step.

        Raises:
            InvalidStoreOptionsError: Not exactly one of ``client``, ``url`` and
                ``connection``, or bad values.
            EncryptionUnavailableError: ``encryption`` without the extra installed.
            EncryptionKeyError: The master key settings are missing or refused.
        """
        if sum(source is not None for source in (client, url, connection)) != 1:
            raise InvalidStoreOptionsError("pass exactly one of client= or url=")
        if client_options and url is None:
            raise InvalidStoreOptionsError("client_options apply only to a store built from url=")
        if max_entry_bytes is not None and (
            not isinstance(max_entry_bytes, int) or max_entry_bytes <= 0
        ):
            raise InvalidStoreOptionsError("max_entry_bytes must be a positive integer")
        if encryption is not None and not isinstance(encryption, EncryptionSettings):
            raise InvalidStoreOptionsError("encryption must be an EncryptionSettings")
        if url is not None:
            connection = Connection.from_url(url, client_options)
        elif client is not None:
            connection = Connection.of_client(client)
        assert connection is not None
        self._connection = connection
        self._owns_connection = client is not None or url is not None
        self._closed = False
        self._database = validate_database_name(database)
        self._prefix = validate_collection_prefix(collection_prefix)
        self._create_indexes = create_indexes
        self._max_entry_bytes = max_entry_bytes
        self._summary_lease_ms = summary_lease_ms
        self._encryption = encryption
        self._bulk_write = bulk_write
        self._transactions = transactions
        self._wiring: _Wiring | None = None
        if encryption is not None:  # refuse a missing extra or a bad master key now
            keyring_for(encryption, connection.client)

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
    def collection_prefix(self) -> str:
        """What precedes ``entries``, ``sessions`` and ``entry_chunks`` in collection names."""
        return self._prefix

    @property
    def hosts(self) -> str:
        """The hosts this store talks to, without credentials (for messages and logs)."""
        return self._connection.hosts

    @property
    def client(self) -> Any:
        """The driver client this store talks through (from a URL: the running loop's)."""
        return self._connection.client

    @property
    def _wired(self) -> _Wiring:
        """The collections, sealer and append path on the running loop's client."""
        client = self._connection.client
        if self._wiring is None or self._wiring.client is not client:
            collections = Collections.of(client, self._database, self._prefix)
            sealer = None
            if self._encryption is not None:
                keyring = keyring_for(self._encryption, client)
                sealer = Sealer(keyring, collections, database=self._database, prefix=self._prefix)
            summaries = Summaries(
                collections, self._connection, lease_ms=self._summary_lease_ms, sealer=sealer
            )
            appender = Appender(
                collections,
                self._connection,
                summaries,
                max_entry_bytes=self._max_entry_bytes,
                sealer=sealer,
                bulk_write=self._bulk_write,
                transactions=self._transactions,
            )
            self._wiring = _Wiring(client, collections, sealer, summaries, appender)
        return self._wiring

    @property
    def _collections(self) -> Collections:
        return self._wired.collections

    @property
    def _sealer(self) -> Sealer | None:
        return self._wired.sealer

    @property
    def encrypted(self) -> bool:
        """Whether this store encrypts what it writes."""
        return self._encryption is not None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the client if this store created it; later calls raise ``StoreClosedError``."""
        if self._closed:
            return
        self._closed = True
        if self._owns_connection:
            await self._connection.aclose()

    @contextlib.contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        """Refuse a closed store, and translate driver errors into typed errors naming ``name``.

        A call still running when the store is closed (an ``iter_entries`` being read) fails
        with ``StoreClosedError`` too: its client went with the store, not the server.
        """
        if self._closed or self._connection.closed:
            raise StoreClosedError("this MongoSessionStore is closed")
        try:
            with self._connection.translate_errors(name):
                yield
        except StoreUnavailableError:
            if self._closed or self._connection.closed:
                raise StoreClosedError(f"{name}: this MongoSessionStore was closed") from None
            raise

    async def connect(self) -> None:
        """Check the server now (and create indexes unless disabled), instead of on first use.

        Raises:
            StoreUnavailableError: The server cannot be reached, named by host.
            StoreAuthenticationError: The server refused the credentials.
        """
        with self._operation("connect"):
            await self._collections.database.command("ping")
            await self._ready()

    async def ensure_indexes(self) -> None:
        """Create the store's indexes, and the key vault's if encrypted.

        Idempotent, safe to run from many processes at once.

        Raises:
            ForeignCollectionError: A collection holds documents the store did not write;
                no index was created.
        """
        with self._operation("ensure_indexes"):
            await self._check_ownership()
            await self._ensure_indexes()

    async def _ensure_indexes(self) -> None:
        await self._collections.ensure_indexes()
        if self._sealer is not None:
            await self._sealer.keyring.ensure_index()
        client_facts(self._connection.client).indexed.add((self._database, self._prefix))

    async def _check_ownership(self) -> None:
        await check_owned(self._collections)
        client_facts(self._connection.client).owned.add((self._database, self._prefix))

    async def _owned(self) -> None:
        """Before any call, once per client, database and prefix: check the collections are ours.

        Only reads: a user with role ``read`` passes it. Driver errors propagate raw, so that
        the operation that needed this step names itself in the error.
        """
        if (self._database, self._prefix) not in client_facts(self._connection.client).owned:
            await self._check_ownership()

    async def _ready(self) -> ClientFacts:
        """Prepare to write: check ownership, create indexes, learn the server's limits.

        Once per client, database and prefix; indexes unless ``create_indexes=False``. Reads
        need only ``_owned``.
        """
        await self._owned()
        facts = client_facts(self._connection.client)
        if self._create_indexes and (self._database, self._prefix) not in facts.indexed:
            await self._ensure_indexes()
        sealer = self._sealer
        if self._create_indexes and sealer is not None and not sealer.keyring.indexed:
            await sealer.keyring.ensure_index()  # a plain store on this client made the others
        if facts.max_bson is None:
            await self._learn_server(facts)
        return facts

    async def _learn_server(self, facts: ClientFacts) -> None:
        """Ask the server its document size limit, whether it takes ``bulkWrite``, transactions."""
        client = self._connection.client
        try:
            hello = await self._collections.database.command("hello")
        except NotImplementedError:  # mongomock has no commands
            facts.commands = False
            facts.max_bson = _DEFAULT_MAX_BSON
            return
        wire = int(hello.get("maxWireVersion", 0))
        facts.bulk_write = wire >= _BULK_WRITE_WIRE_VERSION and has_client_bulk_write(client)
        facts.transactions = "logicalSessionTimeoutMinutes" in hello and (
            "setName" in hello or hello.get("msg") == "isdbgrid"
        )
        facts.max_bson = int(hello.get("maxBsonObjectSize", _DEFAULT_MAX_BSON))

    # -- append ----------------------------------------------------------------------------

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Append entries in order, skipping those whose ``uuid`` the transcript holds.

        Raises:
            InvalidKeyError: Malformed key; nothing written.
            InvalidEntryError: Malformed batch, or an entry over ``max_entry_bytes`` (the error
                names it); nothing of the batch written.
            StoreUnavailableError: The server failed; appending the same batch again is safe.
            KeyDestroyedError: ``forget`` destroyed the transcript's data key, or its
                session's (a new subagent transcript of a forgotten session, while the tenant
                has no key); nothing written.
        """
        with self._operation("append"):
            await self._wired.appender.append(key, entries, ready=self._ready)

    async def append_new(
        self,
        transcripts: Sequence[NewTranscript | tuple[SessionKey, list[SessionStoreEntry]]],
    ) -> list[int | None]:
        """Store transcripts that do not exist yet, each whole, in three round trips for all.

        For bulk loads (``session-store-mongo import`` of many small transcripts), where an
        ``append`` per transcript would pay its round trips for each. Where the deployment
        takes transactions, one transaction inserts every transcript's document already
        settled (counts and summary) and all the entries: all or nothing. Elsewhere (or when
        that transaction is refused: a transcript exists, a ``uuid`` repeats) one insert
        creates the documents with their sequence numbers reserved, one inserts the entries,
        one ``bulk_write`` settles each transcript with the compare-and-set ``append`` sends
        for one. A transcript that exists already is left untouched: append to it as usual.
        An entry whose ``uuid`` repeats within a transcript is skipped, as ``append`` skips it.

        Each item is a ``NewTranscript`` or a ``(key, entries)`` pair; a ``NewTranscript`` may
        carry the transcript's last-write time (``mtime``, as ``set_mtime`` sets it; else now).

        Returns:
            For each transcript, in order: how many entries were stored, or ``None`` if it
            existed already (nothing was written to it).

        Raises:
            InvalidKeyError: A malformed key; nothing written.
            InvalidEntryError: A malformed entry, or one over ``max_entry_bytes``; nothing
                written.
            InvalidStoreOptionsError: An ``mtime`` that is not a ``datetime``; nothing written.
            KeyDestroyedError: A transcript, or its session, was forgotten and its tenant has
                no data key since; nothing written (``append`` each: the others are taken).
            StoreUnavailableError: The server failed. What landed is settled (a transaction
                lands whole or not at all); calling again reports the transcripts created as
                existing (append to them: uuids stored are skipped).
        """
        with self._operation("append"):
            return await self._wired.appender.append_new(transcripts, ready=self._ready)

    # -- load ------------------------------------------------------------------------------

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return the transcript in append order, or ``None`` if nothing was ever stored."""
        ident = key_fields(validate_key(key))
        with self._operation("load"):
            await self._owned()
            entries = await read_entries(self._collections, ident, sealer=self._sealer)
        return entries or None

    def iter_entries(
        self, key: SessionKey, *, after: int | None = None
    ) -> AsyncGenerator[StoredEntry, None]:
        """Stream a transcript in append order, in bounded memory, whatever its length.

        Usage::

            async with contextlib.aclosing(store.iter_entries(key, after=seq)) as items:
                async for item in items:
                    handle(item.entry)   # item.seq: resume with after=item.seq

        Args:
            key: The transcript; nothing is yielded for an unknown key.
            after: Yield only the entries behind this ``seq`` (an item's ``seq`` from an earlier
                read); ``None`` starts at the first entry.

        Returns:
            An async generator of ``StoredEntry`` (``seq``, ``subpath``, ``entry``), each entry
            deep-equal to what was appended, entries stored in chunks reassembled.

        Raises:
            InvalidKeyError: Malformed key or ``after``, raised by this call itself.
            StoreUnavailableError: The server failed while streaming.
            KeyDestroyedError: ``forget`` destroyed the transcript's data key.
        """
        ident = key_fields(validate_key(key))
        if after is not None and not is_seq(after):
            raise InvalidKeyError(
                f"after must be a seq (an int from 0 to 2**63-1) or None, got {after!r}"
            )
        return self._iter_entries(ident, after)

    async def _iter_entries(
        self, ident: dict[str, str], after: int | None
    ) -> AsyncGenerator[StoredEntry, None]:
        with self._operation("iter_entries"):
            await self._owned()
            # Closing this iterator must close the reader's cursor now, not at garbage collection.
            async with contextlib.aclosing(
                iter_stored(
                    self._collections,
                    ident,
                    after=after,
                    sealer=self._sealer,
                    batch_size=STREAM_BATCH,
                )
            ) as items:
                async for item in items:
                    yield item

    # -- follow ----------------------------------------------------------------------------

    def follow(
        self,
        key: SessionKey,
        *,
        after: Position = None,
        include_subkeys: bool = False,
        poll_interval: float = 0.5,
        change_streams: bool = True,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
    ) -> Follower:
        """Follow a transcript: what is stored after ``after``, then every entry appended.

        Each entry comes once, in ``seq`` order within its transcript, whichever process
        appends it; iterate with ``async for`` (``async with`` closes the change stream). The
        iteration ends only when the session is deleted (``follower.deleted`` then says so).
        Change streams need a replica set or a sharded cluster; elsewhere the follower polls.

        Args:
            key: The transcript; a main key with ``include_subkeys`` takes its subagents too.
            after: ``None`` (from the start), a ``seq``, ``"end"`` (only what comes next), or
                a mapping of subpath (``None`` for main) to ``seq``, as ``follower.position``.
            include_subkeys: Follow the session's subagent transcripts as well.
            poll_interval: Seconds between reads when polling; with change streams, the
                longest a follower waits before it looks at a held-back gap again.
            change_streams: ``False`` polls even where change streams exist.
            reconnect_timeout: Seconds from the first request the server fails to answer to
                giving up; every retry is capped by what is left. ``0`` retries nothing.

        Raises:
            InvalidKeyError: Malformed key, or ``include_subkeys`` with a subpath.
            InvalidStoreOptionsError: A bad ``after`` or interval.
            StoreUnavailableError: (while iterating) The server stayed out of reach.
            StoreClosedError: The store is closed.
        """
        clean = validate_key(key)

        def check_open() -> None:
            with self._operation("follow"):
                pass

        check_open()
        return Follower(
            self._collections,
            self._connection,
            key_fields(clean),
            after=after,
            include_subkeys=include_subkeys,
            poll_interval=poll_interval,
            change_streams=change_streams,
            lease_ms=self._summary_lease_ms,
            reconnect_timeout=reconnect_timeout,
            check_open=check_open,
            sealer=self._sealer,
        )

    # -- listing ---------------------------------------------------------------------------

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """List the project's main transcripts with their last storage write time (epoch ms)."""
        project = validate_project_key(project_key)
        with self._operation("list_sessions"):
            await self._owned()
            cursor = self._collections.sessions.find(
                _main_transcripts(project), {"_id": 0, "session_id": 1, "mtime": 1, **_LISTED}
            )
            return [
                {"session_id": doc["session_id"], "mtime": epoch_ms(doc["mtime"])}
                async for doc in cursor
                if _listed(doc)
            ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Return the main transcripts' summaries, catching up any left behind.

        Raises:
            SummariesUnavailableError: claude-agent-sdk is not installed (it owns the fold).
        """
        project = validate_project_key(project_key)
        fold = load_fold()
        summaries: list[SessionSummaryEntry] = []
        with self._operation("list_session_summaries"):
            await self._owned()
            cursor = self._collections.sessions.find(_main_transcripts(project))
            docs = [doc async for doc in cursor if _listed(doc)]
            stored = self._wired.summaries
            for doc in docs:
                key: SessionKey = {"project_key": project, "session_id": doc["session_id"]}
                if doc.get("summary_seq", 0) < doc.get("seq", 0):
                    summary = await self._caught_up(key, key_fields(key), doc, fold)
                elif SUMMARY_SEALED in doc:
                    summary = await stored.view(doc, key)
                else:  # the common case, per session: no coroutine to run
                    summary = summary_view(doc, key)
                if summary is not None:
                    summaries.append(summary)
        return summaries

    async def _caught_up(
        self, key: SessionKey, ident: dict[str, str], doc: dict[str, Any], fold: Fold
    ) -> SessionSummaryEntry | None:
        """The summary caught up: written back if this user may write, else folded in memory.

        A user who may only read (``list`` with the ``read`` role) gets the same summary
        without the write it is not allowed.
        """
        summaries = self._wired.summaries
        try:
            return await summaries.view(await summaries.catch_up(key, ident, doc, fold), key)
        except OperationFailure as exc:
            if not refused_to_user(exc):
                raise
            return await summaries.caught_up_view(key, ident, doc, fold)

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """List the subpaths stored under a session, sorted."""
        clean = validate_session_key(key)
        with self._operation("list_subkeys"):
            await self._owned()
            # The session's transcripts, main one included: a filter on the key's prefix alone
            # is one index range on any server, where "subpath != ''" is not on every planner.
            cursor = self._collections.sessions.find(clean, {"_id": 0, "subpath": 1, **_LISTED})
            return sorted(
                [
                    doc["subpath"]
                    async for doc in cursor
                    if doc["subpath"] != MAIN_SUBPATH and _listed(doc)
                ]
            )

    async def size(self, key: SessionKey) -> int:
        """Return how many entries the transcript holds (0 for an unknown key).

        The count settled so far, plus the entries stored past ``settled`` (writers in flight,
        or a block waiting for the lease): one range read of ``entry_seq``, empty as a rule.

        Raises:
            KeyDestroyedError: ``forget`` destroyed the transcript's data key.
        """
        ident = key_fields(validate_key(key))
        with self._operation("size"):
            await self._owned()
            doc = await self._collections.sessions.find_one(
                ident, {"count": 1, "forgotten": 1, **_POSITIONS}
            )
            if doc is None:
                return 0
            if "forgotten" in doc:
                raise key_destroyed(ident, doc["forgotten"])
            settled, reserved = int(doc.get("settled", 0)), int(doc.get("seq", 0))
            unsettled = 0
            if settled < reserved:
                unsettled = await self._collections.entries.count_documents(
                    {**ident, "seq": {"$gt": settled, "$lte": reserved}, "hole": {"$ne": True}}
                )
        return int(doc.get("count", 0)) + unsettled

    async def set_mtime(self, key: SessionKey, mtime: datetime) -> bool:
        """Set a stored transcript's last-write time, as listings, summaries and retention see it.

        For migrations and restores that keep a transcript's original time
        (``session-store-mongo migrate`` sets the predecessor's ``updatedAt``). The next append
        sets it to the server's clock again.

        Args:
            key: The transcript.
            mtime: The time; a naive ``datetime`` is taken as UTC.

        Returns:
            Whether the transcript exists (a key never written stays unknown).

        Raises:
            InvalidKeyError: Malformed key.
            InvalidStoreOptionsError: ``mtime`` is not a ``datetime``.
        """
        ident = key_fields(validate_key(key))
        mtime = checked_mtime(mtime)
        with self._operation("set_mtime"):
            await self._ready()
            result = await self._collections.sessions.update_one(ident, {"$set": {"mtime": mtime}})
        return bool(result.matched_count)

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
        with self._operation("delete"):
            await self._ready()
            # Numbers reserved but not settled are fenced and settled first, so that an insert
            # still on its way fails instead of landing, uncounted, in the deleted transcript.
            await self._wired.summaries.settle_as_deleted(scope)
            # Keep each transcript's document as an empty tombstone: its sequence counter must
            # never restart below entries a racing writer may still be inserting. Counting
            # deletions tells followers the session they follow was deleted.
            await self._collections.sessions.update_many(
                scope,
                {
                    "$set": {"count": 0, "bytes": 0},
                    "$inc": {"deletions": 1},
                    # A deleted transcript may start again, readable, under a fresh data key.
                    "$unset": {
                        "summary": "",
                        "summary_escaped": "",
                        "summary_sealed": "",
                        "forgotten": "",
                    },
                    "$currentDate": {"mtime": True},
                },
            )
            # The holes stay: they keep late inserts out.
            await self._collections.entries.delete_many({**scope, "hole": {"$ne": True}})
            await self._collections.chunks.delete_many(scope)

    async def prune_inactive(
        self,
        older_than: timedelta | float,
        *,
        dry_run: bool = False,
        only: Sequence[SessionListSubkeysKey] | None = None,
    ) -> list[SessionListSubkeysKey]:
        """Delete whole sessions (main and subagent transcripts) idle for longer than that.

        Single entries are never expired: that would truncate a live transcript. The empty
        documents ``delete`` leaves go too, once idle as long, without being reported.

        Args:
            older_than: Idle time, as a ``timedelta`` or in seconds.
            dry_run: Only return what would be deleted.
            only: Consider these sessions alone (say, those an operator confirmed after a dry
                run); one written to since is idle no longer and is kept.

        Returns:
            The sessions deleted (or that would be).

        Raises:
            InvalidStoreOptionsError: ``older_than`` is negative, not finite, or reaches back
                before the year 1.
        """
        with self._operation("prune_inactive"):
            await self._ready()
            idle = await idle_sessions(self._collections.sessions, older_than, only=only)
            if not dry_run:
                await prune(self._collections, idle)
        return [session.key for session in idle if session.transcripts]

    # -- encryption --------------------------------------------------------------------------

    def _require_sealer(self, operation: str) -> Sealer:
        if self._sealer is None:
            raise InvalidStoreOptionsError(
                f"{operation} needs an encrypted store: pass encryption=EncryptionSettings(...)"
            )
        return self._sealer

    async def forget(self, project_key: str) -> Forgotten:
        """Destroy the project's data key (every key, with ``key_scope="session"``).

        Everything encrypted under it becomes unreadable for good, wherever a copy lives:
        replicas, backups, exports of the database. Its transcripts stay in the database as
        ciphertext until deleted or pruned: ``load`` and ``size`` raise ``KeyDestroyedError``,
        listings leave them out, ``stats`` counts them as forgotten, and appending to one
        raises ``KeyDestroyedError``. New sessions of the project start afresh under a new
        key. A process that fetched the key before may still use it for
        ``EncryptionSettings.key_cache_ms``.

        Transcripts of the project stored in clear (by a store without encryption settings)
        hold nothing the key reaches: they stay readable and listed, are not marked, and come
        back in ``stored_in_clear`` for the caller to ``delete``.

        Returns:
            How many keys were destroyed and transcripts made unreadable, and which stay
            readable (no key: nothing of the project was encrypted, or it was forgotten before,
            at ``forgotten_at``; nothing is changed).

        Raises:
            InvalidStoreOptionsError: The store is not encrypted.
        """
        project = validate_project_key(project_key)
        with self._operation("forget"):
            sealer = self._require_sealer("forget")
            await self._ready()
            key_ids = await sealer.project_keys(project)
            if not key_ids:  # never encrypted, or forgotten before: say which
                earlier = await self._collections.sessions.find_one(
                    {"project_key": project, "forgotten": {"$exists": True}},
                    {"forgotten": 1},
                    sort=[("forgotten", -1)],
                )
                when = None if earlier is None else earlier["forgotten"]
                return Forgotten(project, keys=0, transcripts=0, forgotten_at=when)
            clear = await self._stored_in_clear(project)
            # Mark first: from now on no process appends to these transcripts. Clear ones are
            # left alone: destroying the key does not make them unreadable.
            spared = {"$nor": [key_fields(key) for key in clear]} if clear else {}
            marked = await self._collections.sessions.update_many(
                {"project_key": project, **_VISIBLE, **spared},
                {"$currentDate": {"forgotten": True}},
            )
            destroyed = await sealer.keyring.destroy(key_ids)
        return Forgotten(
            project,
            keys=destroyed,
            transcripts=int(marked.modified_count),
            stored_in_clear=tuple(clear),
        )

    async def _stored_in_clear(self, project: str) -> list[SessionKey]:
        """The project's transcripts that hold entries and no ciphertext at all.

        A store without encryption settings writes them (an operator who left out the
        encryption config). One indexed read per transcript: a sealed transcript's first entry
        document is sealed; only a clear transcript is read through.
        """
        clear: list[SessionKey] = []
        cursor = self._collections.sessions.find(
            {"project_key": project, **_VISIBLE},
            {"_id": 0, "session_id": 1, "subpath": 1, "summary_sealed": 1, **_POSITIONS},
        )
        async for doc in cursor:
            if "summary_sealed" in doc or not may_hold_entries(doc):
                continue
            key: SessionKey = {"project_key": project, "session_id": doc["session_id"]}
            if doc["subpath"] != MAIN_SUBPATH:
                key["subpath"] = doc["subpath"]
            sealed = await self._collections.entries.find_one(
                {**key_fields(key), SEALED: {"$exists": True}}, {"_id": 1}
            )
            if sealed is None:
                clear.append(key)
        return clear

    async def rotate_keys(self, project_key: str | None = None) -> int:
        """Rewrap this store's data keys (or one project's) under the configured master key.

        ``EncryptionSettings.kms_provider`` and ``master_key`` name the new master key;
        ``kms_providers`` must still hold the old one, to unwrap. No transcript is rewritten.

        Returns:
            How many data keys were rewrapped.

        Raises:
            InvalidStoreOptionsError: The store is not encrypted.
            EncryptionKeyError: A key cannot be unwrapped, or the new master key is refused.
        """
        project = None if project_key is None else validate_project_key(project_key)
        with self._operation("rotate_keys"):
            sealer = self._require_sealer("rotate_keys")
            await self._ready()
            return await sealer.rewrap(project)

    async def stats(self, *, largest: int = 10) -> StoreStats:
        """Count sessions, transcripts, entries and bytes; list the ``largest`` sessions.

        Deleted transcripts (the empty documents ``delete`` keeps) are not counted.
        """
        with self._operation("stats"):
            await self._owned()
            return await store_stats(self._collections, largest=largest, sealer=self._wired.sealer)
