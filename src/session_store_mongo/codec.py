"""How an entry becomes a BSON document and comes back deep-equal.

Usage::

    from session_store_mongo.codec import encode_entry, decode_entry

    stored, escaped = encode_entry(entry)     # BSON-safe copy, and whether it needed escaping
    assert decode_entry(stored, escaped) == entry

Most entries are stored as they are, so operators can query ``entry.type`` or ``entry.message``.
An entry MongoDB cannot hold as is (a key that starts with ``$``, contains ``.`` or NUL, or an
integer outside BSON's 64-bit range) is stored escaped, and its document is flagged so that only
flagged entries pay for decoding:

- in keys, ``%`` becomes ``%25``, ``.`` becomes ``%2E``, NUL becomes ``%00`` and a leading ``$``
  becomes ``%24``;
- an integer outside 64 bits becomes ``{"%int": "<decimal digits>"}``; no escaped key can start
  with ``%i``, so the marker cannot collide with data.

Before an append, ``prepare_entry`` encodes each entry of the batch once, measures it, and splits
an entry larger than one document into chunks (``entry_json`` bytes, 8 MB each); the entry's own
document then holds only its ``type``, ``uuid`` and ``timestamp``, and load reassembles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import bson
from bson import ObjectId

from session_store_protocol.errors import EntryTooLargeError, InvalidEntryError
from session_store_protocol.types import SessionStoreEntry

__all__ = [
    "PreparedEntry",
    "decode_entry",
    "encode_entry",
    "entry_json",
    "epoch_ms",
    "prepare_entry",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_BIG_INT = "%int"
_KEY_ESCAPES = {"%": "%25", ".": "%2E", "\x00": "%00"}
_KEY_UNESCAPES = {"25": "%", "2E": ".", "00": "\x00", "24": "$"}


class _Encoder:
    """Walks an entry once: validates JSON types and escapes only where MongoDB needs it."""

    def __init__(self) -> None:
        self.escaped = False

    def key(self, key: object, path: str) -> str:
        if not isinstance(key, str):
            raise InvalidEntryError(f"{path}: object keys must be strings, got {key!r}")
        if key.startswith("$") or any(c in key for c in "%.\x00"):
            self.escaped = True
            out = "".join(_KEY_ESCAPES.get(c, c) for c in key)
            return "%24" + out[1:] if out.startswith("$") else out
        return key

    def value(self, value: Any, path: str) -> Any:
        if isinstance(value, str) or value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            if _INT64_MIN <= value <= _INT64_MAX:
                return value
            self.escaped = True
            return {_BIG_INT: str(value)}
        if isinstance(value, float):
            return value
        if isinstance(value, dict):
            return {self.key(k, path): self.value(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        raise InvalidEntryError(f"{path}: {type(value).__name__} is not a JSON value")


def encode_entry(entry: dict[str, Any], where: str = "entry") -> tuple[dict[str, Any], bool]:
    """Return a BSON-safe copy of ``entry`` and whether it had to be escaped.

    Args:
        entry: A JSON object.
        where: How errors name the entry, e.g. ``"entry 3 (uuid 'a1')"``.

    Raises:
        InvalidEntryError: The entry holds a value JSON cannot (bytes, sets, non-string keys).
    """
    encoder = _Encoder()
    stored = encoder.value(entry, where)
    return stored, encoder.escaped


def _unescape_key(key: str) -> str:
    if "%" not in key:
        return key
    parts = key.split("%")
    return parts[0] + "".join(_KEY_UNESCAPES[p[:2]] + p[2:] for p in parts[1:])


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BIG_INT in value:
            return int(value[_BIG_INT])
        return {_unescape_key(k): _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def decode_entry(stored: dict[str, Any], escaped: bool) -> dict[str, Any]:
    """Invert ``encode_entry``; unescaped entries are returned as they are."""
    if not escaped:
        return stored
    decoded: dict[str, Any] = _decode(stored)
    return decoded


def epoch_ms(value: Any) -> int:
    """A stored time (a BSON datetime, naive means UTC) in epoch milliseconds; 0 if absent."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp() * 1000)
    return int(value or 0)


def entry_json(entry: dict[str, Any]) -> bytes:
    """Serialize an entry compactly for chunked storage (integers of any size survive)."""
    try:
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidEntryError(f"entry is not JSON-serializable: {exc}") from exc


_DOC_SLACK = 16 * 1024
"""Room left under the server's document limit for the key fields around an entry."""
_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass
class PreparedEntry:
    """One validated entry of a batch, encoded and ready to insert."""

    index: int
    """Its position in the batch; its ``seq`` is the block's start plus this."""
    entry: SessionStoreEntry
    stored: dict[str, Any]
    """What the entry's document holds under ``entry`` (a stub when ``chunks`` is set)."""
    escaped: bool
    dedupe: Any
    """The entry's ``uuid``, or a fresh ObjectId when it has none."""
    size: int
    """The entry's BSON size, counted in the transcript's ``bytes``."""
    chunks: list[bytes] | None


def prepare_entry(
    index: int, entry: SessionStoreEntry, max_bson: int, max_entry_bytes: int | None
) -> PreparedEntry:
    """Encode entry ``index`` of a batch; chunk it if it would not fit one document.

    Raises:
        InvalidEntryError: The entry holds a value JSON cannot (the error names the entry).
        EntryTooLargeError: The entry is larger than ``max_entry_bytes``.
    """
    uuid = entry.get("uuid")
    where = f"entry {index}" + (f" (uuid {uuid!r})" if uuid is not None else "")
    stored, escaped = encode_entry(dict(entry), where)
    size = len(bson.encode({"entry": stored}))
    if max_entry_bytes is not None and size > max_entry_bytes:
        raise EntryTooLargeError(
            f"{where} is {size} bytes, above max_entry_bytes={max_entry_bytes}; "
            "nothing of the batch was stored"
        )
    chunks = None
    if size > max_bson - _DOC_SLACK:
        raw = entry_json(dict(entry))
        chunks = [raw[i : i + _CHUNK_BYTES] for i in range(0, len(raw), _CHUNK_BYTES)]
        # What operators see of it in the entries collection; load reassembles the chunks.
        visible = {k: v for k, v in entry.items() if k in ("type", "uuid", "timestamp")}
        stored, escaped = encode_entry(visible, where)
    return PreparedEntry(
        index, entry, stored, escaped, uuid if uuid is not None else ObjectId(), size, chunks
    )
