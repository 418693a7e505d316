"""Reading a transcript back in order, streamed: one indexed query sorted by ``seq``.

Usage::

    from session_store_mongo.reader import iter_stored, read_entries, read_slots

    async for item in iter_stored(collections, key_fields(key), after=10):
        print(item.seq, item.entry)                             # seq 11 onwards, in order
    pending = await read_entries(collections, ident, after=10, upto=15)   # a seq range, as a list
    slots = await read_slots(collections, ident, after=10, upto=15)       # holes too, with sizes
    entries = await read_entries(collections, ident, sealer=sealer)        # an encrypted store

A *hole* is the placeholder an append puts on a sequence number that will never hold an entry
(its insert failed, or its writer was taken as dead), so that a late insert cannot land there
(``summary`` explains why); entries skip holes, ``read_slots`` shows them.

The query filters on the key fields and sorts on ``seq``, so the server walks the ``entry_seq``
index in order and never sorts. Documents come back whole: returning them as stored costs the
server least (a projection made SecantusDB about 1.5x slower), and a real MongoDB sends only the
key fields and ``dedupe`` more, about a tenth of a typical entry's bytes. The driver holds one
batch at a time: at most 16 MB (the server's reply limit), or ``batch_size`` documents, so
memory stays bounded whatever the transcript's length. An entry stored in chunks is reassembled
when the reader reaches it, with one query for its parts, so only that entry's parts are in
memory at once. In an encrypted store each sealed document (entry or chunk) is opened by the
``sealer`` as it arrives.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, cast

import bson
from pymongo import ASCENDING

from session_store_protocol.errors import StoreUnavailableError
from session_store_protocol.types import MAIN_SUBPATH, SessionStoreEntry

from .codec import decode_entry
from .driver import maybe_await
from .layout import Collections
from .sealer import SEALED, Sealer, unseal

__all__ = ["Slot", "StoredEntry", "iter_stored", "read_entries", "read_slots"]


@dataclass(frozen=True)
class StoredEntry:
    """One entry of a transcript as stored: where it sits, and the entry itself."""

    seq: int
    """Its position in the transcript: pass it as ``after`` to resume behind it."""
    subpath: str | None
    """The transcript it belongs to: ``None`` for the main one, else e.g. ``subagents/agent-x``."""
    entry: SessionStoreEntry
    """The entry, deep-equal to what was appended."""


@dataclass(frozen=True)
class Slot:
    """What one sequence number of a transcript holds, as settling counts it."""

    seq: int
    entry: SessionStoreEntry | None
    """The entry, or ``None`` for a hole."""
    size: int
    """The entry's BSON size, as the transcript's ``bytes`` counts it (0 for a hole)."""


async def iter_stored(
    collections: Collections,
    ident: dict[str, str],
    *,
    after: int | None = None,
    upto: int | None = None,
    sealer: Sealer | None = None,
    batch_size: int = 0,
) -> AsyncGenerator[StoredEntry, None]:
    """Yield the transcript's entries with ``after < seq <= upto`` in ``seq`` order.

    ``batch_size`` caps the documents per reply (0: as many as fit the server's 16 MB).
    Closing the iterator early (``break`` inside ``contextlib.aclosing``) closes the cursor.

    Raises:
        KeyDestroyedError: The transcript's data key was destroyed (``forget``).
        EncryptionKeyError: It is sealed, and ``sealer`` is missing or cannot open it.
    """
    subpath = ident["subpath"] if ident["subpath"] != MAIN_SUBPATH else None
    async with contextlib.aclosing(
        _walk(collections, ident, after, upto, sealer, batch_size)
    ) as documents:
        async for doc, entry in documents:
            if entry is not None:
                yield StoredEntry(doc["seq"], subpath, entry)


async def read_entries(
    collections: Collections,
    ident: dict[str, str],
    *,
    after: int | None = None,
    upto: int | None = None,
    sealer: Sealer | None = None,
) -> list[SessionStoreEntry]:
    """The entries ``iter_stored`` yields, as a list."""
    stored = iter_stored(collections, ident, after=after, upto=upto, sealer=sealer)
    return [item.entry async for item in stored]


async def read_slots(
    collections: Collections,
    ident: dict[str, str],
    *,
    after: int,
    upto: int,
    sealer: Sealer | None = None,
) -> list[Slot]:
    """Every document at a sequence number in ``(after, upto]``, holes included, measured."""
    async with contextlib.aclosing(_walk(collections, ident, after, upto, sealer)) as documents:
        return [Slot(doc["seq"], entry, _size(doc)) async for doc, entry in documents]


async def _walk(
    collections: Collections,
    ident: dict[str, str],
    after: int | None,
    upto: int | None,
    sealer: Sealer | None,
    batch_size: int = 0,
) -> AsyncGenerator[tuple[dict[str, Any], SessionStoreEntry | None], None]:
    """Yield each document in ``seq`` order with its entry (``None`` for a hole), opened."""
    # A range on seq even from the start (numbers begin at 1): the filter then names every
    # field of entry_seq, the index that yields the order, and no planner picks entry_dedupe.
    seq_range: dict[str, int] = {"$gt": after or 0}
    if upto is not None:
        seq_range["$lte"] = upto
    filter_: dict[str, Any] = {**ident, "seq": seq_range}
    cursor = collections.entries.find(filter_).sort("seq", ASCENDING).batch_size(batch_size)
    try:
        async for doc in cursor:
            if SEALED in doc:
                doc = await unseal(sealer, ident, doc)
            if doc.get("hole"):
                yield doc, None
            elif "chunked" in doc:
                yield doc, await _reassemble(collections, ident, doc, sealer)
            else:
                yield (
                    doc,
                    cast(SessionStoreEntry, decode_entry(doc["entry"], doc.get("escaped", False))),
                )
    finally:
        await maybe_await(cursor.close())


def _size(doc: dict[str, Any]) -> int:
    """The BSON size of a document's entry, as the append measured it before inserting."""
    if doc.get("hole"):
        return 0
    if "chunked" in doc:
        return int(doc.get("size", 0))  # the stub records the size of the entry it stands for
    return len(bson.encode({"entry": doc["entry"]}))


async def _reassemble(
    collections: Collections, ident: dict[str, str], stub: dict[str, Any], sealer: Sealer | None
) -> SessionStoreEntry:
    """The entry whose parts the chunks collection holds for the stub's ``seq``."""
    seq, expected = stub["seq"], stub["chunked"]
    # One part per reply (a part is 8 MB), each appended and dropped: the parts are never all
    # held beside their join, nor the joined bytes beside the text decoded from them.
    cursor = collections.chunks.find({**ident, "seq": seq}).sort("part", ASCENDING).batch_size(1)
    joined = bytearray()
    parts = 0
    try:
        async for doc in cursor:
            opened = await unseal(sealer, ident, doc) if SEALED in doc else doc
            joined += opened["data"]
            parts += 1
            del doc, opened
    finally:
        await maybe_await(cursor.close())
    if parts != expected:
        raise StoreUnavailableError(
            f"entry seq {seq} of {ident!r} is stored in {expected} chunks but {parts} "
            "were found (the transcript was deleted while being read?)"
        )
    text = joined.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
    del joined
    entry: SessionStoreEntry = json.loads(text)
    return entry
