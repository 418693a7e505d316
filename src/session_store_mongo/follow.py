"""Following a transcript live: what is stored after a position, then each entry appended.

Usage::

    key = {"project_key": "p", "session_id": "s"}
    async with store.follow(key) as follower:              # from the first entry
        async for item in follower:                         # a StoredEntry
            print(item.subpath, item.seq, item.entry)
    # The loop ends only when the session is deleted: then ``follower.deleted`` is True.

    store.follow(key, after=41)                    # what is stored after seq 41, then live
    store.follow(key, after="end")                 # only entries appended from now on
    store.follow(key, include_subkeys=True)        # subagent transcripts too
    store.follow(key, after=follower.position)     # resume exactly where a follower stopped

Every item is delivered exactly once and, within each transcript, in ``seq`` order, whichever
process appends it. How:

1. The follower reads the session document(s) first: the number of times the session was
   deleted (``deletions``, so a later ``delete`` ends the follow) and, for ``after="end"``,
   the last reserved number.
2. It opens a change stream on the store's database: inserts into ``entries`` for the key
   (a ``$match`` on the key fields), and changes of the transcript's ``sessions`` document
   (deleted, or its accounting moved). Then it reads what is stored after its position
   (``reader.iter_stored``, as ``iter_entries`` does) and from then on takes entries from the
   stream, dropping any whose ``seq`` it has passed: nothing is lost or repeated at the switch.
3. Concurrent writers can commit a later block before an earlier one. An entry whose ``seq``
   is not the next one is not delivered from the stream: the follower holds back until the
   missing numbers are stored (then it reads them in order) or known never to be: a hole sits
   on each (``layout.hole``: a failed or fenced number), or the transcript's ``settled``
   watermark has passed them (every number up to it is decided; a uuid its writer skipped as a
   duplicate leaves its number empty), or a writer that reserved them has been silent for the
   reservation lease (the store's ``summary_lease_ms``: it crashed).
4. A broken stream (a reconnect, a server restart) is reopened after the last event seen
   (its resume token; or from now if the server lost it) and the follower re-reads from its
   position, so the outage loses nothing. It gives up (``StoreUnavailableError``, saying how
   long it tried) ``reconnect_timeout`` seconds after the first request the server failed to
   answer was sent: each retry is capped by what is left (``pymongo.timeout``, server
   selection included), so the client's ``serverSelectionTimeoutMS`` does not stretch it.
   ``reconnect_timeout=0`` retries nothing.

Change streams need a replica set or a sharded cluster (a one-node replica set will do). On a
standalone server or mongomock the follower polls by position every ``poll_interval`` seconds
instead, and logs once per client that it does. Memory stays bounded whatever the pace of the
consumer: the stored part is one cursor's batch at a time, and the stream's events wait on the
server until the follower asks for them; nothing is queued in between. In an encrypted store
the stream carries ciphertext: each entry is opened by the store's sealer as it is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from session_store_protocol.errors import (
    InvalidKeyError,
    InvalidStoreOptionsError,
    StoreUnavailableError,
)
from session_store_protocol.types import MAIN_SUBPATH, SessionStoreEntry

from .client import Connection, client_facts, refused_to_user
from .codec import decode_entry
from .driver import maybe_await, pymongo_client
from .layout import Collections, is_seq
from .reader import StoredEntry, iter_stored, read_slots
from .sealer import SEALED, Sealer, unseal
from .summary import may_hold_entries

__all__ = ["DEFAULT_RECONNECT_TIMEOUT", "Follower", "Position"]

log = logging.getLogger("session_store_mongo")

Position: TypeAlias = int | Mapping[str | None, int] | Literal["end"] | None
"""Where a follow starts: after a ``seq`` of the key's transcript, after a ``seq`` per subpath
(``None`` for the main transcript; ``Follower.position`` has this shape), ``"end"`` (only what
is appended from now on), or ``None`` (from the first entry)."""

DEFAULT_RECONNECT_TIMEOUT = 60.0
"""Seconds a follower keeps trying to reach a server that went away, unless told otherwise."""
_FIRST_RECHECK = 0.05
"""Seconds before a follower held back at a gap looks at the accounting again (then doubling)."""
_MAX_STREAM_WAIT = 1.0
"""Longest a change stream's getMore waits on the server for a change, in seconds."""
_MAX_BACKOFF = 2.0
"""Longest wait between attempts to reach a server that went away."""
_CANCEL_AGAIN = 0.1
"""Seconds ``aclose`` gives a cancelled wait for the next entry to end before cancelling again."""
_LEAST_REQUEST_TIME = 0.001
"""Seconds a request is given once ``reconnect_timeout`` is spent: enough to fail at once."""
_NO_CHANGE_STREAMS = {
    20,  # IllegalOperation
    40573,  # "The $changeStream stage is only supported on replica sets"
    115,  # CommandNotSupported
}
_UNRESUMABLE = {260, 280, 286}  # InvalidResumeToken, ChangeStreamFatalError, HistoryLost
_ACCOUNTING_FIELDS = ("settled", "deletions")
"""Fields of a ``sessions`` document whose change may end a follow or decide a gap."""
_SESSION_FIELDS = {"_id": 1, "subpath": 1, "seq": 1, "settled": 1, "count": 1, "deletions": 1}


@dataclass
class _Transcript:
    """What a follower knows of one transcript."""

    subpath: str
    position: int
    """The last ``seq`` delivered, or passed as decided never to be stored."""
    due_at: float | None = 0.0
    """When to read the stored entries after ``position`` (``None``: the stream is enough)."""
    gap_since: float | None = None
    """Since when ``position + 1`` is missing while a later entry is stored."""
    recheck: float = _FIRST_RECHECK

    def advance(self, seq: int) -> None:
        self.position = seq
        self.gap_since = None
        self.recheck = _FIRST_RECHECK

    def held_back(self, now: float) -> None:
        """``position + 1`` is missing and undecided: look again a little later."""
        if self.gap_since is None:
            self.gap_since = now
        self.due_at = now + self.recheck
        self.recheck = min(self.recheck * 2, 1.0)


class Follower:
    """An async iterator of ``StoredEntry``: the stored part, then what is appended live.

    Each item carries ``seq``, ``subpath`` and ``entry``. Made by ``MongoSessionStore.follow``;
    close it with ``aclose()`` or ``async with``.
    """

    def __init__(
        self,
        collections: Collections,
        connection: Connection,
        ident: dict[str, str],
        *,
        after: Position,
        include_subkeys: bool,
        poll_interval: float,
        change_streams: bool,
        lease_ms: int,
        reconnect_timeout: float,
        check_open: Callable[[], None],
        sealer: Sealer | None = None,
    ) -> None:
        if include_subkeys and ident["subpath"] != MAIN_SUBPATH:
            raise InvalidKeyError("follow: include_subkeys=True needs a main key (no subpath)")
        if not (isinstance(poll_interval, (int, float)) and poll_interval > 0):
            raise InvalidStoreOptionsError("follow: poll_interval must be a positive number")
        if not (isinstance(reconnect_timeout, (int, float)) and reconnect_timeout >= 0):
            raise InvalidStoreOptionsError("follow: reconnect_timeout must be >= 0 seconds")
        self._after = _checked_position(after)
        self._collections = collections
        self._connection = connection
        self._ident = ident
        self._session_filter = ident if not include_subkeys else _session_of(ident)
        self._include_subkeys = include_subkeys
        self._poll_interval = float(poll_interval)
        client = connection.client
        self._streaming = change_streams and client_facts(client).change_streams
        self._selection_timeout = _selection_timeout(client)
        # A getMore waits at most this long for a change: short enough to recheck a held-back
        # gap on time, far below the socket timeout.
        self._stream_wait = min(self._poll_interval, _MAX_STREAM_WAIT)
        self._lease = lease_ms / 1000
        self._reconnect_timeout = float(reconnect_timeout)
        self._check_open = check_open
        self._sealer = sealer
        self._transcripts: dict[str, _Transcript] = {}
        self._watched_id: Any = None
        self._deletions = 0
        self._stream: Any = None
        self._resume_token: Any = None
        self._reopen = False
        self._started = False
        self._failing_since: float | None = None
        """When the current outage began: the first failed request was sent (``None``: none)."""
        self._warned: float | None = None
        """The outage already reported as a warning (its ``_failing_since``)."""
        self.deleted = False
        """Whether the iteration ended because the session was deleted."""
        self._delivered: dict[str | None, int] = {}
        self._items = self._run()
        self._next: asyncio.Future[StoredEntry] | None = None

    @property
    def position(self) -> dict[str | None, int]:
        """The last ``seq`` delivered per transcript (``None``: main); pass it as ``after``."""
        return dict(self._delivered)

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> StoredEntry:
        """The next entry; cancelling the wait (a timeout) keeps it for the next call."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._items.__anext__())
        next_item = self._next
        try:
            item = await asyncio.shield(next_item)
        finally:
            if next_item.done():
                self._next = None
        self._delivered[item.subpath] = item.seq
        return item

    async def __aenter__(self) -> Follower:
        """Take the starting positions now (``after="end"`` is this moment), not at first use."""
        self._check_open()
        with self._connection.translate_errors("follow"):
            await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following and close the change stream; idempotent."""
        next_item, self._next = self._next, None
        if next_item is not None:
            # One cancel is not always enough: Python 3.11's asyncio.wait_for, through which
            # PyMongo sends each request, drops a cancellation that lands as the send completes,
            # and the task would follow on (a Ctrl-C ignored). So cancel again until it ends.
            while not next_item.done():
                next_item.cancel()
                await asyncio.wait([next_item], timeout=_CANCEL_AGAIN)
            await asyncio.gather(next_item, return_exceptions=True)  # its outcome, retrieved
        await self._items.aclose()

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[StoredEntry, None]:
        self._failing_since = None  # a failed ``async with`` is not part of the iteration's outage
        backoff = _FIRST_RECHECK
        try:
            while True:
                self._check_open()
                try:
                    await self._start()
                    if not self.deleted:
                        if self._streaming and (self._stream is None or self._reopen):
                            await self._open_stream()
                        async for item in self._catch_up_due():
                            self._failing_since = None  # delivering again: the outage is over
                            yield item
                    if not self.deleted:
                        async for item in self._listen():
                            self._failing_since = None
                            yield item
                    if self.deleted:
                        return
                    self._failing_since, backoff = None, _FIRST_RECHECK
                except PyMongoError as exc:
                    self._check_open()
                    if refused_to_user(exc):  # not an outage: no wait makes it allowed
                        with self._connection.translate_errors("follow"):
                            raise
                    now = time.monotonic()
                    first = self._failing_since is None or self._failing_since != self._warned
                    if self._failing_since is None:
                        self._failing_since = now
                    waited = now - self._failing_since
                    left = self._reconnect_timeout - waited
                    if left <= 0:
                        try:
                            with self._connection.translate_errors("follow"):
                                raise
                        except StoreUnavailableError as typed:  # or StoreAuthenticationError
                            gave_up = (
                                f"gave up after {waited:.1f}s of trying "
                                f"(reconnect_timeout={self._reconnect_timeout:g}s)"
                            )
                            raise type(typed)(
                                f"{typed}; {gave_up}",
                                hosts=typed.hosts,
                                reason=f"{typed.reason}; {gave_up}",
                            ) from None
                    # One warning per outage (a CLI prints it as a line), then quieter tries.
                    log.log(
                        logging.WARNING if first else logging.INFO,
                        "follow on %s: %s; reconnecting (for up to %gs)",
                        self._connection.hosts,
                        self._connection.describe(exc),
                        self._reconnect_timeout,
                    )
                    self._warned = self._failing_since
                    await self._close_stream()
                    for transcript in self._transcripts.values():
                        transcript.due_at = 0.0  # re-read from the position: nothing lost
                    # The last try before the deadline still gets half of what is left.
                    await asyncio.sleep(min(backoff, left / 2))
                    backoff = min(backoff * 2, _MAX_BACKOFF)
        finally:
            await self._close_stream()

    @contextlib.contextmanager
    def _request(self, waits: float = 0.0) -> Iterator[None]:
        """One request to the server, given no more than what is left of ``reconnect_timeout``.

        The first request that fails starts the outage's clock, from the moment it was sent:
        since then the follower has not reached the server. Below the client's
        ``serverSelectionTimeoutMS`` left, ``pymongo.timeout`` caps the request, server
        selection included, at what is left, so no retry overruns the deadline. ``waits`` is
        time the server is asked to wait on top (a change stream's getMore).
        """
        sent = time.monotonic()
        limit = self._time_left(sent)
        try:
            with contextlib.nullcontext() if limit is None else pymongo.timeout(limit + waits):
                yield
        except PyMongoError:
            if self._failing_since is None:
                self._failing_since = sent
            raise

    def _time_left(self, now: float) -> float | None:
        """Seconds a request may take now, or ``None``: the client's own timeouts end it in time.

        They do while at least ``serverSelectionTimeoutMS`` is left (and an outage then gets its
        warning as soon as the client gives up on one request), and with ``reconnect_timeout=0``,
        which retries nothing.
        """
        if not self._reconnect_timeout:
            return None
        since = now if self._failing_since is None else self._failing_since
        left = since + self._reconnect_timeout - now
        if left >= self._selection_timeout:
            return None
        # pymongo.timeout(0) would mean no limit: a spent budget still gets a sliver, and fails.
        return max(left, _LEAST_REQUEST_TIME)

    async def _start(self) -> None:
        """Read where each transcript stands, then open the change stream; once."""
        if self._started:
            return
        docs = await self._session_docs()
        watched = docs.get(self._watched_subpath)
        if watched is not None:
            self._watched_id = watched["_id"]
            self._deletions = int(watched.get("deletions", 0))
            # Deleted, and nothing appended since: following it would wait for a new session.
            self.deleted = self._deletions > 0 and not may_hold_entries(watched)
        self._transcript(self._ident["subpath"], watched)
        for subpath, doc in docs.items():
            self._transcript(subpath, doc)
        if self._streaming and not self.deleted:
            await self._open_stream()
        self._started = True

    @property
    def _watched_subpath(self) -> str:
        """The transcript whose deletion ends the follow: the key's own (the main one's)."""
        return self._ident["subpath"]

    def _transcript(self, subpath: str, doc: Mapping[str, Any] | None = None) -> _Transcript:
        """The transcript at ``subpath``, added at its starting position if new."""
        transcript = self._transcripts.get(subpath)
        if transcript is None:
            transcript = _Transcript(subpath, self._start_position(subpath, doc))
            self._transcripts[subpath] = transcript
            self._delivered[_public(subpath)] = transcript.position
        return transcript

    def _start_position(self, subpath: str, doc: Mapping[str, Any] | None) -> int:
        after = self._after
        if after == "end":
            return int(doc.get("seq", 0)) if doc is not None else 0
        if isinstance(after, int):
            return after if subpath == self._ident["subpath"] else 0
        if isinstance(after, Mapping):
            return int(after.get(None if subpath == MAIN_SUBPATH else subpath, 0))
        return 0

    async def _session_docs(self) -> dict[str, dict[str, Any]]:
        """The ``sessions`` documents of the followed transcripts, by subpath (no summary)."""
        with self._request():
            cursor = self._collections.sessions.find(self._session_filter, _SESSION_FIELDS)
            return {doc["subpath"]: doc async for doc in cursor}

    # -- the stored part -----------------------------------------------------------------------

    async def _catch_up_due(self) -> AsyncIterator[StoredEntry]:
        """Read what is stored after the position of every transcript that is due."""
        now = time.monotonic()
        due = [t for t in self._transcripts.values() if t.due_at is not None and t.due_at <= now]
        if not due:
            return
        docs = await self._session_docs()
        self._note_watched(docs.get(self._watched_subpath))
        if self.deleted:
            return
        if self._include_subkeys:
            due += [self._transcript(s, docs[s]) for s in docs if s not in self._transcripts]
        for transcript in due:
            async for item in self._catch_up(transcript, docs.get(transcript.subpath)):
                yield item

    async def _catch_up(
        self, transcript: _Transcript, doc: Mapping[str, Any] | None
    ) -> AsyncIterator[StoredEntry]:
        """Deliver what is stored after the position, in order, up to an undecided gap."""
        reserved = int(doc.get("seq", 0)) if doc is not None else 0
        settled = int(doc.get("settled", 0)) if doc is not None else 0
        if reserved > transcript.position:
            ident = {**self._ident, "subpath": transcript.subpath}
            stored = iter_stored(
                self._collections, ident, after=transcript.position, sealer=self._sealer
            )
            async with contextlib.aclosing(stored):
                while True:
                    with self._request():  # one batch at most: never across a yield
                        item = await anext(stored, None)
                    if item is None:
                        break
                    if not await self._gap_decided(transcript, item.seq, settled):
                        transcript.held_back(time.monotonic())
                        return
                    transcript.advance(item.seq)
                    yield item
        transcript.advance(max(transcript.position, settled))
        transcript.due_at = None

    async def _gap_decided(self, transcript: _Transcript, seq: int, settled: int) -> bool:
        """Whether every number between the position and ``seq`` is known to stay empty.

        Settled numbers are; above the watermark, a number with a hole on it is; a gap that
        outlived the lease is taken as its writer's death.
        """
        after = transcript.position
        if seq <= max(after + 1, settled):
            return True
        ident = {**self._ident, "subpath": transcript.subpath}
        with self._request():
            holes = await read_slots(
                self._collections,
                ident,
                after=max(after, settled),
                upto=seq - 1,
                sealer=self._sealer,
            )
        if len(holes) == seq - 1 - max(after, settled):  # no entry there: the reader yields those
            return True
        return self._abandoned(transcript, seq)

    def _abandoned(self, transcript: _Transcript, seq: int) -> bool:
        """Whether the gap before ``seq`` has outlived the lease: its writer crashed."""
        since = transcript.gap_since
        if since is None or time.monotonic() - since < self._lease:
            return False
        log.warning(
            "follow on %s: seq %d-%d of %r skipped: reserved by a writer silent for the lease",
            self._connection.hosts,
            transcript.position + 1,
            seq - 1,
            {**self._ident, "subpath": transcript.subpath},
        )
        return True

    def _note_watched(self, doc: Mapping[str, Any] | None) -> None:
        """End the follow if the session was deleted; learn its document when it appears."""
        if doc is None:
            if self._watched_id is not None:  # pruned: the document is gone
                self.deleted = True
        elif int(doc.get("deletions", 0)) > self._deletions:
            self.deleted = True
        elif self._watched_id is None:
            self._watched_id = doc["_id"]
            self._reopen = self._streaming  # watch its changes too

    # -- the live part -------------------------------------------------------------------------

    async def _listen(self) -> AsyncIterator[StoredEntry]:
        """Wait for the next change (or poll) and deliver what it brings."""
        if not self._streaming:
            await asyncio.sleep(self._poll_interval)
            for transcript in self._transcripts.values():  # new subkeys come with the read
                transcript.due_at = 0.0
            return
        with self._request(waits=self._stream_wait):
            event = await self._stream.try_next()
        self._resume_token = self._stream.resume_token
        if event is None:
            if not self._stream.alive:
                self._stream = None  # invalidated or closed: open another
            return
        operation = event["operationType"]
        if operation in ("drop", "dropDatabase", "invalidate"):
            self.deleted = True
        elif event["ns"]["coll"] == self._collections.sessions.name:
            self._on_session_change(event)
        else:
            async for item in self._on_insert(event["fullDocument"]):
                yield item

    def _on_session_change(self, event: Mapping[str, Any]) -> None:
        operation = event["operationType"]
        if operation == "insert":  # the transcript's document appeared: watch it from now on
            self._note_watched(event["fullDocument"])
        elif operation == "delete":
            self.deleted = True
        else:  # deleted, or the accounting moved: whoever was held back looks again
            now = time.monotonic()
            for transcript in self._transcripts.values():
                if transcript.gap_since is not None or operation == "replace":
                    transcript.due_at = now
            updated = event.get("updateDescription", {}).get("updatedFields", {})
            if "deletions" in updated:
                self._transcript(self._watched_subpath).due_at = now

    async def _on_insert(self, doc: Mapping[str, Any]) -> AsyncIterator[StoredEntry]:
        transcript = self._transcript(doc["subpath"])
        seq = int(doc["seq"])
        if seq <= transcript.position:
            return  # delivered from the stored part already
        now = time.monotonic()
        if doc.get("hole"):  # a number that will never hold an entry
            if seq == transcript.position + 1 and transcript.due_at is None:
                transcript.advance(seq)
            elif transcript.gap_since is not None:
                transcript.due_at = now  # it may be the gap holding the follower back
        elif seq == transcript.position + 1 and transcript.due_at is None:
            with self._request():
                item = await self._item_of(transcript, doc)
            if item is None:  # gone already: deleted meanwhile, the read says so
                transcript.due_at = now
                return
            transcript.advance(seq)
            yield item
        elif seq == transcript.position + 1 or transcript.gap_since is None:
            transcript.due_at = now  # read in order from the stored entries
        # else: held back at a gap; the stored read after it finds this entry too

    async def _item_of(self, transcript: _Transcript, doc: Mapping[str, Any]) -> StoredEntry | None:
        """The entry an insert event carries; one stored in chunks is read back whole."""
        seq = int(doc["seq"])
        ident = {**self._ident, "subpath": transcript.subpath}
        if "chunked" not in doc:
            opened = await unseal(self._sealer, ident, dict(doc)) if SEALED in doc else doc
            entry = decode_entry(opened["entry"], opened.get("escaped", False))
            return StoredEntry(seq, _public(transcript.subpath), cast(SessionStoreEntry, entry))
        stored = iter_stored(self._collections, ident, after=seq - 1, upto=seq, sealer=self._sealer)
        async with contextlib.aclosing(stored):
            async for item in stored:
                return item
        return None

    # -- the change stream ---------------------------------------------------------------------

    def _pipeline(self) -> list[dict[str, Any]]:
        """Inserts of the followed entries, and changes of the watched ``sessions`` document."""
        entries, sessions = self._collections.entries.name, self._collections.sessions.name
        inserted = {f"fullDocument.{name}": value for name, value in self._session_filter.items()}
        watched: dict[str, Any] = {"ns.coll": sessions}
        if self._watched_id is None:
            watched.update(
                {
                    "operationType": "insert",
                    **{f"fullDocument.{name}": value for name, value in self._ident.items()},
                }
            )
        else:
            watched["documentKey._id"] = self._watched_id
            watched["$or"] = [
                {"operationType": {"$in": ["replace", "delete"]}},
                *(
                    {f"updateDescription.updatedFields.{name}": {"$exists": True}}
                    for name in _ACCOUNTING_FIELDS
                ),
            ]
        return [
            {
                "$match": {
                    "$or": [
                        {"ns.coll": entries, "operationType": "insert", **inserted},
                        watched,
                        {"ns.coll": {"$in": [entries, sessions]}, "operationType": "drop"},
                        {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
                    ]
                }
            }
        ]

    async def _open_stream(self) -> None:
        """Open (or reopen after the last event seen) the change stream; else start polling."""
        await self._close_stream()
        self._reopen = False
        database = self._collections.database
        if not callable(getattr(database, "watch", None)):  # mongomock: no change streams
            self._fall_back_to_polling()
            return
        wait_ms = int(self._stream_wait * 1000)
        options: dict[str, Any] = {"max_await_time_ms": max(1, wait_ms)}
        if self._resume_token is not None:
            options["resume_after"] = self._resume_token
        try:
            with self._request():
                stream = await maybe_await(database.watch(self._pipeline(), **options))
                self._stream = await stream.__aenter__()  # Motor opens the cursor only here
        except OperationFailure as exc:
            if exc.code in _NO_CHANGE_STREAMS:
                self._fall_back_to_polling()
            elif exc.code in _UNRESUMABLE and self._resume_token is not None:
                self._resume_token = None  # the server lost our place: re-read from positions
                for transcript in self._transcripts.values():
                    transcript.due_at = 0.0
                await self._open_stream()
            else:
                raise

    def _fall_back_to_polling(self) -> None:
        self._streaming = False
        facts = client_facts(self._connection.client)
        if facts.change_streams is not False:
            facts.change_streams = False
            log.warning(
                "follow on %s: no change streams (they need a replica set or a sharded "
                "cluster); polling every %gs instead",
                self._connection.hosts,
                self._poll_interval,
            )

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(PyMongoError), self._request():
                await maybe_await(stream.close())


def _selection_timeout(client: Any) -> float:
    """The client's ``serverSelectionTimeoutMS`` in seconds; infinite for mongomock."""
    options = getattr(pymongo_client(client), "options", None)  # mongomock: a database
    seconds = getattr(options, "server_selection_timeout", None)
    return float(seconds) if isinstance(seconds, (int, float)) else math.inf


def _session_of(ident: Mapping[str, str]) -> dict[str, str]:
    return {"project_key": ident["project_key"], "session_id": ident["session_id"]}


def _public(subpath: str) -> str | None:
    return None if subpath == MAIN_SUBPATH else subpath


def _checked_position(after: Any) -> Position:
    """``after`` if it is a position, else ``InvalidKeyError`` saying what is."""
    if after is None or after == "end":
        return after  # type: ignore[no-any-return]
    if is_seq(after):
        return after
    if isinstance(after, Mapping) and all(
        (subpath is None or (isinstance(subpath, str) and subpath)) and is_seq(seq)
        for subpath, seq in after.items()
    ):
        return after
    raise InvalidKeyError(
        'follow: after must be None, "end", a seq (an int from 0 to 2**63-1), or a mapping of '
        "subpath (None for the main transcript) to seq"
    )
