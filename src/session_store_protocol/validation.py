"""Validation shared by every store, applied before anything is read or written.

Usage::

    from session_store_protocol.validation import validate_key, validate_entries

    key = validate_key(key)           # raises InvalidKeyError
    validate_entries(entries)         # raises InvalidEntryError
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidEntryError, InvalidKeyError
from .types import SessionKey, SessionListSubkeysKey, SessionStoreEntry

__all__ = ["validate_entries", "validate_key", "validate_project_key", "validate_session_key"]

_KEY_FIELDS = frozenset({"project_key", "session_id", "subpath"})


def _require_text(field: str, value: object) -> str:
    # Anything but a str (a dict such as {"$ne": ""} above all) could act as a query operator.
    if not isinstance(value, str):
        raise InvalidKeyError(f"{field} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidKeyError(f"{field} must not be empty")
    if "\x00" in value:
        raise InvalidKeyError(f"{field} must not contain NUL characters")
    return value


def validate_project_key(project_key: object) -> str:
    """Return ``project_key`` if it is a non-empty string.

    Raises:
        InvalidKeyError: It is not a string, is empty or holds a NUL character.
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
        InvalidKeyError: A field is missing, not a string, empty, or the subpath is ``""``,
            absolute or contains ``..``.
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


def validate_entries(entries: object) -> list[SessionStoreEntry]:
    """Check that ``entries`` is a list of JSON objects with a string ``type``.

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
