"""The wire shapes and the `SessionStore` protocol, structurally identical to the SDK's.

Usage::

    from session_store_protocol import SessionKey, SessionStore

    async def mirror(store: SessionStore, key: SessionKey) -> None:
        await store.append(key, [{"type": "user", "uuid": "u1"}])

Names and shapes match ``claude_agent_sdk.types`` (>= 0.1.65), so a store typed against this module
is accepted wherever the SDK wants its own ``SessionStore``, without importing the SDK at run time.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TypedDict, runtime_checkable

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required
else:  # pragma: no cover - exercised on Python 3.10 only
    from typing_extensions import NotRequired, Required

__all__ = [
    "MAIN_SUBPATH",
    "KeyParts",
    "SessionKey",
    "SessionListSubkeysKey",
    "SessionStore",
    "SessionStoreEntry",
    "SessionStoreListEntry",
    "SessionSummaryEntry",
    "StoreConfig",
    "key_parts",
]


class SessionKey(TypedDict):
    """Identifies a main transcript or, with ``subpath``, a subagent transcript."""

    project_key: str
    session_id: str
    subpath: NotRequired[str]
    """Absent for the main transcript; ``""`` is invalid. E.g. ``subagents/agent-<id>``."""


MAIN_SUBPATH = ""
"""The ``subpath`` under which stores file the main transcript (whose key has none)."""

KeyParts = tuple[str, str, str]
"""A transcript's ``(project_key, session_id, subpath)``, ``MAIN_SUBPATH`` for the main one."""


def key_parts(key: SessionKey) -> KeyParts:
    """Return the transcript's ``(project_key, session_id, subpath)``, as every store files it."""
    return (key["project_key"], key["session_id"], key.get("subpath", MAIN_SUBPATH))


class SessionStoreEntry(TypedDict, total=False):
    """One JSONL transcript line; any keys beyond these are opaque and must round-trip."""

    type: Required[str]
    uuid: str
    timestamp: str


class SessionStoreListEntry(TypedDict):
    """One main transcript of a project, as returned by ``list_sessions``."""

    session_id: str
    mtime: int
    """Storage write time in Unix epoch milliseconds."""


class SessionSummaryEntry(TypedDict):
    """An incrementally folded session summary; ``data`` is opaque SDK-owned state."""

    session_id: str
    mtime: int
    """Storage write time in epoch milliseconds, the same clock as ``list_sessions``."""
    data: dict[str, Any]


class SessionListSubkeysKey(TypedDict):
    """The key ``list_subkeys`` takes: a session without ``subpath``."""

    project_key: str
    session_id: str


class StoreConfig(TypedDict, total=False):
    """A wire config as a client sends it: ``{"kind": "mongo", "options": {...}}``.

    Options never carry credentials; those stay in the server-side builder defaults.
    """

    kind: Required[str]
    options: dict[str, Any] | None


@runtime_checkable
class SessionStore(Protocol):
    """Where a harness mirrors transcripts so that any process can resume them.

    Only ``append`` and ``load`` are required by the SDK; stores in this project implement all six
    methods. Implement the protocol structurally: nobody has to inherit from it.
    """

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Append a batch of entries to the transcript at ``key``.

        Args:
            key: The transcript. Validated before anything is read or written.
            entries: JSON objects, each with a string ``type``. ``[]`` writes nothing: a fresh
                key stays unknown to ``load`` and ``list_sessions``.

        Order of calls is kept. An entry whose ``uuid`` is already stored under the same key is
        skipped (the SDK retries failed batches and replays imports); entries without ``uuid``
        are always appended.

        Raises:
            InvalidKeyError: The key is malformed; nothing was written.
            InvalidEntryError: An entry is not a JSON object with a string ``type``.
            StoreUnavailableError: The backend could not be reached.
        """
        ...

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return the transcript at ``key`` in append order, or ``None`` if never written.

        Entries come back deep-equal to what was appended (key order inside objects may differ).
        """
        ...

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """List the project's main transcripts (never subpaths); ``[]`` for an unknown project.

        ``mtime`` is the storage write time in epoch milliseconds. Order is unspecified.
        """
        ...

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Return the summaries folded inside ``append`` for the project's main transcripts.

        The read-fold-write of a summary is serialized per session across processes.
        """
        ...

    async def delete(self, key: SessionKey) -> None:
        """Delete a transcript. A main key cascades to its subkeys; a subkey removes only itself.

        Deleting an unknown key is not an error.
        """
        ...

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """List the subpaths stored under a session; ``[]`` when there are none."""
        ...
