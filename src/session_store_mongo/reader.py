"""Reading a transcript back: one indexed query sorted by ``seq``, chunked entries reassembled.

Usage::

    from session_store_mongo.reader import read_entries

    entries = await read_entries(collections, key_fields(key))                # all of it
    pending = await read_entries(collections, ident, {"$gt": 10, "$lte": 15})  # a seq range
"""

from __future__ import annotations

import json
from typing import Any

from pymongo import ASCENDING

from session_store_protocol.types import SessionStoreEntry

from .codec import decode_entry
from .layout import Collections

__all__ = ["read_entries"]

_ENTRY_FIELDS = {"_id": 0, "entry": 1, "escaped": 1, "chunked": 1, "seq": 1}


async def read_entries(
    collections: Collections, ident: dict[str, str], seq_range: dict[str, int] | None = None
) -> list[SessionStoreEntry]:
    """Return the transcript's entries (within ``seq_range`` if given) in ``seq`` order."""
    filter_: dict[str, Any] = dict(ident)
    if seq_range is not None:
        filter_["seq"] = seq_range
    entries: list[Any] = []
    chunked: dict[int, int] = {}
    cursor = collections.entries.find(filter_, _ENTRY_FIELDS).sort("seq", ASCENDING)
    async for doc in cursor:
        if "chunked" in doc:
            chunked[len(entries)] = doc["seq"]
        entries.append(decode_entry(doc["entry"], doc.get("escaped", False)))
    if chunked:
        await _reassemble(collections, ident, entries, chunked)
    return entries


async def _reassemble(
    collections: Collections,
    ident: dict[str, str],
    entries: list[SessionStoreEntry],
    chunked: dict[int, int],
) -> None:
    """Replace the stubs at the positions in ``chunked`` by the entries their chunks hold."""
    parts: dict[int, list[bytes]] = {}
    cursor = collections.chunks.find({**ident, "seq": {"$in": list(chunked.values())}}).sort(
        [("seq", ASCENDING), ("part", ASCENDING)]
    )
    async for doc in cursor:
        parts.setdefault(doc["seq"], []).append(bytes(doc["data"]))
    for position, seq in chunked.items():
        entries[position] = json.loads(b"".join(parts[seq]))
