"""Validation shared by every store, applied before anything is read or written.

Usage::

    from session_store_protocol.validation import copy_entries, validate_key

    key = validate_key(key)           # raises InvalidKeyError
    batch = copy_entries(entries)     # raises InvalidEntryError; plain JSON copies

``copy_entries`` is ``validate_entries`` (the batch's shape: a list of objects with a string
``type``) plus a check and copy of every value inside (``json_values.JsonCopier``). A store that
copies entries its own way (the Mongo codec escapes while it copies) calls ``validate_entries``
and then its own ``JsonCopier`` subclass, so the checks are the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from .errors import InvalidEntryError, InvalidKeyError
from .json_values import JsonCopier
from .types import SessionKey, SessionListSubkeysKey, SessionStoreEntry

__all__ = [
    "copy_entries",
    "entry_label",
    "entry_uuid",
    "validate_entries",
    "validate_key",
    "validate_project_key",
    "validate_session_key",
]

_KEY_FIELDS = frozenset({"project_key", "session_id", "subpath"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def _require_text(field: str, value: object) -> str:
    # Anything but a str (a dict such as {"$ne": ""} above all) could act as a query operator.
    if not isinstance(value, str):
        raise InvalidKeyError(f"{field} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidKeyError(f"{field} must not be empty")
    if "\x00" in value:
        raise InvalidKeyError(f"{field} must not contain NUL characters")
    if not value.isascii() and _SURROGATE.search(value):
        # Key fields are identifiers: stored as they are (shard key, file names on export),
        # and a lone UTF-16 surrogate cannot be written as UTF-8 anywhere.
        raise InvalidKeyError(f"{field} must not contain UTF-16 surrogates, got {value!r}")
    return value


def validate_project_key(project_key: object) -> str:
    """Return ``project_key`` if it is a non-empty string.

    Raises:
        InvalidKeyError: It is not a string, is empty or holds a NUL character or a UTF-16
            surrogate.
    """
    return _require_text("project_key", project_key)


def _validate_subpath(subpath: object) -> str:
    text = _require_text("subpath", subpath)
    if text.startswith("/") or text.startswith("\\"):
        raise InvalidKeyError(f"subpath must be relative, got {text!r}")
    parts = text.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKeyError(f"subpath must not contain empty, '.' or '..' segments: {text!r}")
    return text


def validate_session_key(key: object) -> SessionListSubkeysKey:
    """Validate a ``{project_key, session_id}`` mapping (the ``list_subkeys`` argument).

    Raises:
        InvalidKeyError: It is not a mapping, has unknown fields or a bad value.
    """
    if not isinstance(key, Mapping):
        raise InvalidKeyError(f"session key must be a mapping, got {type(key).__name__}")
    unknown = set(key) - {"project_key", "session_id"}
    if unknown:
        raise InvalidKeyError(f"unknown session key fields: {sorted(map(str, unknown))}")
    return {
        "project_key": validate_project_key(key.get("project_key")),
        "session_id": _require_text("session_id", key.get("session_id")),
    }


def validate_key(key: object) -> SessionKey:
    """Return a clean copy of a ``SessionKey``.

    Raises:
        InvalidKeyError: A field is missing, not a string, empty, holds NUL or a UTF-16
            surrogate, or the subpath is ``""``, absolute or contains ``..``.
    """
    if not isinstance(key, Mapping):
        raise InvalidKeyError(f"session key must be a mapping, got {type(key).__name__}")
    unknown = set(key) - _KEY_FIELDS
    if unknown:
        raise InvalidKeyError(f"unknown session key fields: {sorted(map(str, unknown))}")
    clean: SessionKey = {
        "project_key": validate_project_key(key.get("project_key")),
        "session_id": _require_text("session_id", key.get("session_id")),
    }
    if "subpath" in key:
        clean["subpath"] = _validate_subpath(key["subpath"])
    return clean


def entry_uuid(entry: SessionStoreEntry) -> str | None:
    """The ``uuid`` that deduplicates ``entry``, or ``None`` when it has none.

    An absent, ``null`` or empty ``uuid`` is no uuid: such entries are always appended (two
    entries with ``uuid: ""`` are two entries, as the SDK's own store keeps them).
    """
    uuid = entry.get("uuid")
    return uuid if uuid else None


def entry_label(index: int, entry: SessionStoreEntry) -> str:
    """How errors name an entry of a batch: ``entry 3`` or ``entry 3 (uuid 'a1')``."""
    uuid = entry_uuid(entry)
    return f"entry {index}" + (f" (uuid {uuid!r})" if uuid is not None else "")


def validate_entries(entries: object) -> list[SessionStoreEntry]:
    """Check the batch's shape: a list of JSON objects, each with a string ``type``.

    A ``uuid``, when present and not ``null``, must be a string. The values inside each entry
    are checked by ``copy_entries`` or the store's own ``JsonCopier``.

    Raises:
        InvalidEntryError: Names the index of the first bad entry; nothing may be written.
    """
    if not isinstance(entries, list):
        raise InvalidEntryError(f"entries must be a list, got {type(entries).__name__}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidEntryError(
                f"entry {index} must be a JSON object, got {type(entry).__name__}"
            )
        kind: Any = entry.get("type")
        if not isinstance(kind, str):
            raise InvalidEntryError(f"entry {index} needs a string 'type' field")
        uuid: Any = entry.get("uuid")
        if uuid is not None and not isinstance(uuid, str):
            raise InvalidEntryError(f"entry {index}: 'uuid' must be a string when present")
    return entries


def copy_entries(entries: object) -> list[SessionStoreEntry]:
    """Validate a batch and return plain JSON copies of its entries.

    Raises:
        InvalidEntryError: A malformed batch, or a value JSON cannot hold (``NaN``, bytes, a
            tuple, a non-string key, nesting deeper than ``json_values.MAX_DEPTH``); names the
            entry and the path to the value.
    """
    batch = validate_entries(entries)
    copier = JsonCopier()
    copies = [
        copier.copy(dict(entry), entry_label(index, entry)) for index, entry in enumerate(batch)
    ]
    return cast("list[SessionStoreEntry]", copies)
