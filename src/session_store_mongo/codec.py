r"""How an entry becomes a BSON document and comes back deep-equal.

Usage::

    from session_store_mongo.codec import encode_entry, decode_entry

    stored, escaped = encode_entry(entry)     # BSON-safe copy, and whether it needed escaping
    assert decode_entry(stored, escaped) == entry

Most entries are stored as they are, so operators can query ``entry.type`` or ``entry.message``.
An entry MongoDB cannot hold as is (a key that starts with ``$``, contains ``.`` or NUL, an
integer outside BSON's 64-bit range, or text with a UTF-16 surrogate, which UTF-8 cannot
encode) is stored escaped, and its document is flagged so that only flagged entries pay for
decoding:

- in keys, ``%`` becomes ``%25``, ``.`` becomes ``%2E``, NUL becomes ``%00``, a leading ``$``
  becomes ``%24`` and a surrogate becomes ``%u`` and its four lowercase hex digits
  (``"\ud83d"`` becomes ``%ud83d``);
- an integer outside 64 bits becomes ``{"%int": "<decimal digits>"}``;
- a string holding a surrogate becomes ``{"%str": "<text>"}``, the text escaped as in keys
  but only for ``%`` and surrogates (``"split \ud83d"`` becomes ``{"%str": "split %ud83d"}``).

No escaped key starts with ``%i`` or ``%s``, so the markers cannot collide with data. Entries
are checked by the protocol's ``JsonCopier`` while they are escaped, in one walk: a value JSON
cannot hold is refused the same way by every store.

Before an append, ``prepare_entry`` encodes each entry of the batch once, measures it, and splits
an entry larger than one document into chunks (``entry_json`` bytes, 8 MB each); the entry's own
document then holds only its ``type``, ``uuid`` and ``timestamp``, and load reassembles it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
from bson import ObjectId

from session_store_protocol.errors import (
    EntryTooLargeError,
    InvalidEntryError,
    InvalidStoreOptionsError,
)
from session_store_protocol.json_values import JsonCopier
from session_store_protocol.types import SessionStoreEntry
from session_store_protocol.validation import entry_label, entry_uuid

__all__ = [
    "PreparedEntry",
    "checked_mtime",
    "decode_entry",
    "dedupe_key",
    "encode_entry",
    "entry_json",
    "epoch_ms",
    "prepare_entry",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_BIG_INT = "%int"
_TEXT = "%str"
_SURROGATE = re.compile("[\\ud800-\\udfff]")
_KEY_SPECIAL = re.compile("[%.\\x00\\ud800-\\udfff]")
_TEXT_SPECIAL = re.compile("[%\\ud800-\\udfff]")
_ESCAPES = {"%": "%25", ".": "%2E", "\x00": "%00"}
_ESCAPED = re.compile("%(25|2E|00|24|u[0-9a-f]{4})")
_UNESCAPES = {"25": "%", "2E": ".", "00": "\x00", "24": "$"}
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"%u{ord(char):04x}"


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return _UNESCAPES.get(code) or chr(int(code[1:], 16))


class _Encoder(JsonCopier):
    """Checks an entry and escapes only where MongoDB needs it, in one walk."""

    def __init__(self) -> None:
        self.escaped = False

    def key(self, key: str) -> str:
        if not key.startswith("$") and not _KEY_SPECIAL.search(key):
            return key
        self.escaped = True
        out = _KEY_SPECIAL.sub(_escape, key)
        return "%24" + out[1:] if out.startswith("$") else out

    def text(self, value: str) -> Any:
        if value.isascii() or not _SURROGATE.search(value):
            return value
        self.escaped = True
        return {_TEXT: _TEXT_SPECIAL.sub(_escape, value)}

    def integer(self, value: int) -> Any:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
        self.escaped = True
        return {_BIG_INT: str(value)}


def encode_entry(entry: dict[str, Any], where: str = "entry") -> tuple[dict[str, Any], bool]:
    """Return a BSON-safe copy of ``entry`` and whether it had to be escaped.

    Args:
        entry: A JSON object.
        where: How errors name the entry, e.g. ``"entry 3 (uuid 'a1')"``.

    Raises:
        InvalidEntryError: The entry holds a value JSON cannot (``NaN``, bytes, tuples,
            non-string keys) or nests deeper than ``json_values.MAX_DEPTH``; names the path.
    """
    encoder = _Encoder()
    stored = encoder.copy(entry, where)
    return stored, encoder.escaped


def dedupe_key(entry: SessionStoreEntry) -> Any:
    """What the entry's document stores as ``dedupe``: its uuid, or a fresh ``ObjectId``.

    A uuid with a UTF-16 surrogate is stored in its escaped form (an object, so it can never
    equal another entry's plain uuid string).
    """
    uuid = entry_uuid(entry)
    return ObjectId() if uuid is None else _Encoder().text(uuid)


def decode_entry(stored: dict[str, Any], escaped: bool) -> dict[str, Any]:
    """Invert ``encode_entry``; unescaped entries are returned as they are.

    The walk keeps its own stack, so a deeply nested document read from the database cannot
    exhaust the interpreter's.
    """
    if not escaped:
        return stored
    top: dict[str, Any] = {}
    stack: list[tuple[Any, Any]] = [(stored, top)]
    while stack:
        source, target = stack.pop()
        is_object = isinstance(source, dict)
        name: Any
        for name, item in source.items() if is_object else enumerate(source):
            value = item
            if isinstance(item, dict):
                if len(item) == 1 and _BIG_INT in item:
                    value = int(item[_BIG_INT])
                elif len(item) == 1 and _TEXT in item:
                    value = _ESCAPED.sub(_unescape, item[_TEXT])
                else:
                    value = {}
                    stack.append((item, value))
            elif isinstance(item, list):
                value = []
                stack.append((item, value))
            if not is_object:
                target.append(value)
            elif "%" in name:
                target[_ESCAPED.sub(_unescape, name)] = value
            else:
                target[name] = value
    return top


def checked_mtime(mtime: object) -> datetime:
    """A last-write time given by a caller, checked (a naive ``datetime`` is taken as UTC).

    Raises:
        InvalidStoreOptionsError: ``mtime`` is not a ``datetime``.
    """
    if not isinstance(mtime, datetime):
        raise InvalidStoreOptionsError(f"mtime must be a datetime, got {type(mtime).__name__}")
    return mtime


def epoch_ms(value: Any) -> int:
    """A stored time (a BSON datetime, naive means UTC) in epoch milliseconds; 0 if absent.

    Exact integer arithmetic (a float timestamp rounds far from 1970), and cheap: listings
    convert one time per session.
    """
    if isinstance(value, datetime):
        epoch = _EPOCH if value.tzinfo is None else _EPOCH_UTC
        return (value - epoch) // _MILLISECOND
    return int(value or 0)


def entry_json(entry: dict[str, Any]) -> bytes:
    """Serialize an entry compactly for chunked storage; ``json.loads`` of it is deep-equal.

    Integers of any size survive, and so do UTF-16 surrogates: they are written with
    ``surrogatepass`` (three bytes each, as CESU-8 would), which ``json.loads`` of bytes reads
    back as they were, paired or lone.
    """
    try:
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEntryError(f"entry is not JSON-serializable: {exc}") from exc
    return text.encode("utf-8", "surrogatepass")


_DOC_SLACK = 16 * 1024
"""Room left under the server's document limit for the key fields around an entry."""
_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass
class PreparedEntry:
    """One validated entry of a batch, encoded and ready to insert."""

    index: int
    """Its position in the batch; its ``seq`` is the block's start plus this."""
    entry: SessionStoreEntry
    content: dict[str, Any]
    """The fields that hold the entry in its document: ``entry`` (a stub when ``chunks`` is
    set) and ``escaped`` when it had to be escaped; ``sealed`` once a sealer encrypted them."""
    dedupe: Any
    """What ``dedupe_key`` gives: the entry's ``uuid``, or a fresh ObjectId when it has none;
    in an encrypted store, the uuid's keyed hash (see ``sealer``)."""
    size: int
    """The entry's BSON size, counted in the transcript's ``bytes``."""
    chunks: list[dict[str, Any]] | None
    """The content of each chunk document (``data``, or ``sealed``) when it did not fit one."""


def prepare_entry(
    index: int, entry: SessionStoreEntry, max_bson: int, max_entry_bytes: int | None
) -> PreparedEntry:
    """Encode entry ``index`` of a batch; chunk it if it would not fit one document.

    Raises:
        InvalidEntryError: The entry holds a value JSON cannot (the error names the entry).
        EntryTooLargeError: The entry is larger than ``max_entry_bytes``.
    """
    where = entry_label(index, entry)
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
        chunks = [
            {"data": bson.Binary(raw[i : i + _CHUNK_BYTES])}
            for i in range(0, len(raw), _CHUNK_BYTES)
        ]
        # What operators see of it in the entries collection; load reassembles the chunks.
        visible = {k: v for k, v in entry.items() if k in ("type", "uuid", "timestamp")}
        stored, escaped = encode_entry(visible, where)
    content: dict[str, Any] = {"entry": stored, "escaped": True} if escaped else {"entry": stored}
    return PreparedEntry(index, entry, content, dedupe_key(entry), size, chunks)
