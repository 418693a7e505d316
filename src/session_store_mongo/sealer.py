"""What an encrypted store seals in its documents, and under which tenant's data key.

Usage (``MongoSessionStore`` does this when given ``encryption=``)::

    from session_store_mongo.sealer import Sealer, unseal

    sealer = Sealer(keyring, collections, database="computeragent_sessions", prefix="")
    await sealer.seal_batch(ident, prepared)          # an append's entries, chunks and dedupe
    sealed = await sealer.seal(ident, {"summary": stored, "summary_escaped": False})
    doc = await unseal(sealer, ident, doc)            # a document read back, content in clear

A document's *content* is what the user wrote: an entry document's ``entry`` (and ``escaped``),
a chunk's ``data``, a session's ``summary`` (and ``summary_escaped``). Sealed, the content is one
field (``sealed``; ``summary_sealed`` on a session document) encrypted with the randomized
algorithm under the tenant's data key. Key fields, ``seq``, counts, sizes and times stay clear:
indexes, sharding, listings and retention need them. An entry's ``dedupe`` becomes an
HMAC-SHA256 of its ``uuid`` under a secret only the tenant's data key yields
(``Keyring.hash_key``): a retried uuid gives the same value, so the unique index still skips
it, and nobody without the key learns the uuid.

The tenant is the project key (``key_scope="project"``) or the session (``"session"``). Its
data key's alt name is the JSON array ``["session-store-mongo", database, prefix,
project_key]`` (plus the session id), so stores in different databases never share a key.

A tenant's data key is created by its first write, and after ``forget`` by the first write of
a new session, never by a write to a forgotten transcript or a forgotten session's new
subagent transcript: those raise ``KeyDestroyedError``, and the key vault stays without a key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from bson import Binary

from session_store_protocol.errors import EncryptionKeyError, KeyDestroyedError
from session_store_protocol.types import MAIN_SUBPATH
from session_store_protocol.validation import entry_uuid

from .codec import PreparedEntry, epoch_ms
from .encryption import KeyNotFoundError, Keyring
from .layout import ENCRYPTED, ENCRYPTION_MARKS, Collections

__all__ = [
    "SEALED",
    "SUMMARY_SEALED",
    "Sealer",
    "clear_refused",
    "is_encrypted",
    "key_destroyed",
    "unseal",
    "written_sealed",
]

SEALED = "sealed"
"""The field holding an entry's or a chunk's content, encrypted."""
SUMMARY_SEALED = "summary_sealed"
"""The field of a session document holding its summary, encrypted."""
_TAG = "session-store-mongo"


class Sealer:
    """Seals and opens one store's documents under its tenants' data keys."""

    def __init__(
        self, keyring: Keyring, collections: Collections, *, database: str, prefix: str
    ) -> None:
        self.keyring = keyring
        self._sessions = collections.sessions
        self._store = [_TAG, database, prefix]
        self._per_session = keyring.settings.key_scope == "session"

    def _name(self, ident: Mapping[str, str]) -> str:
        """The tenant's data key alt name for the transcript ``ident``."""
        parts = [*self._store, ident["project_key"]]
        if self._per_session:
            parts.append(ident["session_id"])
        return _json(parts)

    async def seal(self, ident: Mapping[str, str], content: Mapping[str, Any]) -> Binary:
        """Encrypt ``content`` (a document's content fields) under the tenant's data key."""
        action = f"sealing transcript {_where(ident)}"
        return await self.keyring.encrypt(
            self._name(ident), content, action, before_creating=self._unforgotten(ident)
        )

    async def open(self, ident: Mapping[str, str], sealed: Binary) -> dict[str, Any]:
        """Decrypt what ``seal`` returned.

        Raises:
            KeyDestroyedError: ``forget`` destroyed the tenant's data key.
            EncryptionKeyError: The key vault has no such key, or the master key is wrong.
        """
        action = f"reading transcript {_where(ident)}"
        try:
            content: dict[str, Any] = await self.keyring.decrypt(sealed, action)
        except KeyNotFoundError:
            session = await self._sessions.find_one(
                {k: ident[k] for k in ("project_key", "session_id", "subpath")},
                {"forgotten": 1},
            )
            if session is not None and "forgotten" in session:
                raise key_destroyed(ident, session["forgotten"]) from None
            raise
        return content

    async def seal_batch(self, ident: Mapping[str, str], prepared: list[PreparedEntry]) -> None:
        """Seal each entry's content, its chunks and its dedupe value, in place."""
        name = self._name(ident)
        action = f"sealing transcript {_where(ident)}"
        guard = self._unforgotten(ident)
        hash_key: bytes | None = None
        for p in prepared:
            p.content = {
                SEALED: await self.keyring.encrypt(name, p.content, action, before_creating=guard)
            }
            if p.chunks is not None:
                p.chunks = [
                    {SEALED: await self.keyring.encrypt(name, chunk, action, before_creating=guard)}
                    for chunk in p.chunks
                ]
            uuid = entry_uuid(p.entry)
            if uuid is not None:
                if hash_key is None:
                    hash_key = await self.keyring.hash_key(name, action, before_creating=guard)
                # surrogatepass: a uuid may hold lone UTF-16 surrogates, and still dedupe.
                data = uuid.encode("utf-8", "surrogatepass")
                p.dedupe = Binary(hmac.new(hash_key, data, hashlib.sha256).digest())

    def _unforgotten(self, ident: Mapping[str, str]) -> Callable[[], Awaitable[None]]:
        """What the keyring runs before creating the tenant's data key for ``ident``."""
        return functools.partial(self._refuse_forgotten, ident)

    async def _refuse_forgotten(self, ident: Mapping[str, str]) -> None:
        """Refuse a fresh data key to a forgotten transcript, or to a forgotten session's.

        ``forget`` destroyed the key these were written under: a new one would let them take
        entries again. A new session of the project starts afresh; a deleted one may too.

        Raises:
            KeyDestroyedError: The transcript, or its session's main transcript, is forgotten.
        """
        transcripts = [ident["subpath"], MAIN_SUBPATH]
        found = await self._sessions.find_one(
            {
                "project_key": ident["project_key"],
                "session_id": ident["session_id"],
                "subpath": {"$in": transcripts},
                "forgotten": {"$exists": True},
            },
            {"subpath": 1, "forgotten": 1},
        )
        if found is None:
            return
        if found["subpath"] == ident["subpath"]:
            raise key_destroyed(ident, found["forgotten"])
        session = {**ident, "subpath": MAIN_SUBPATH}
        raise key_destroyed(
            session,
            found["forgotten"],
            consequence="takes no new subagent transcripts (delete the session to start it again)",
        )

    def _project_names(self, project_key: str) -> dict[str, str]:
        """A key vault filter on alt names: this store's keys of ``project_key``."""
        opening = _json([*self._store, project_key])[:-1]
        return {"$regex": f"^{re.escape(opening)}[,\\]]"}

    async def project_keys(self, project_key: str) -> list[Any]:
        """The ids of the data keys of ``project_key`` in this store (one per session, or one)."""
        return await self.keyring.key_ids(self._project_names(project_key))

    async def rewrap(self, project_key: str | None = None) -> int:
        """Rewrap this store's data keys (or one project's) under the configured master key."""
        if project_key is not None:
            return await self.keyring.rewrap(self._project_names(project_key))
        opening = _json(self._store)[:-1]
        return await self.keyring.rewrap({"$regex": f"^{re.escape(opening)},"})


def key_destroyed(
    ident: Mapping[str, str], when: Any, *, consequence: str = "can never be read again"
) -> KeyDestroyedError:
    """The error for a transcript whose tenant was forgotten at ``when`` (a stored time)."""
    stamp = datetime.fromtimestamp(epoch_ms(when) / 1000, timezone.utc)
    return KeyDestroyedError(
        f"the data key of project {ident['project_key']!r} was destroyed by forget on "
        f"{stamp:%Y-%m-%d %H:%M:%S} UTC: transcript {_where(ident)} {consequence}"
    )


async def is_encrypted(sessions: Any, project_key: str) -> bool:
    """Whether the project holds encrypted transcripts: up to three indexed reads.

    An encrypted store marks every transcript it writes (``layout.ENCRYPTED``), summary or not;
    one written before that mark existed has a sealed summary (a main transcript, where
    claude-agent-sdk folds one), or was forgotten. Each read walks the partial index of its mark
    (``layout.ENCRYPTION_MARKS``, the new mark first), which holds none of the project's clear
    transcripts: the cost does not grow with them, and the first found ends the check. Without
    those indexes (``create_indexes=False`` before ``ensure_indexes``) the answer is the same,
    read from the project's documents.
    """
    for mark in ENCRYPTION_MARKS.values():
        if await sessions.find_one({"project_key": project_key, **mark}, {"_id": 1}) is not None:
            return True
    return False


def written_sealed(doc: Mapping[str, Any]) -> bool:
    """Whether a transcript's document says an encrypted store wrote it.

    Its mark (``layout.ENCRYPTED``), or from before that mark a sealed summary. A subagent
    transcript written before the mark carries neither.
    """
    return ENCRYPTED.items() <= doc.items() or SUMMARY_SEALED in doc


def clear_refused(ident: Mapping[str, str]) -> EncryptionKeyError:
    """The error for a store without encryption settings that would create ``ident`` in clear.

    Its project is encrypted; no ``forget`` would reach a transcript stored in clear.
    """
    return EncryptionKeyError(
        f"project {ident['project_key']!r} is encrypted: transcript {_where(ident)} would be "
        "stored in clear; open the store with encryption=EncryptionSettings(...) (CLI: pass "
        "--encryption-config); nothing was written"
    )


async def unseal(
    sealer: Sealer | None, ident: Mapping[str, str], doc: dict[str, Any], field: str = SEALED
) -> dict[str, Any]:
    """``doc`` with its sealed content (``field``) decrypted back into its content fields.

    Raises:
        EncryptionKeyError: The document is sealed and the store has no encryption settings.
    """
    if sealer is None:
        raise EncryptionKeyError(
            f"transcript {_where(ident)} is encrypted: open the store with "
            "encryption=EncryptionSettings(...) (CLI: --encryption-config)"
        )
    opened = {k: v for k, v in doc.items() if k != field}
    opened.update(await sealer.open(ident, doc[field]))
    return opened


def _where(ident: Mapping[str, str]) -> str:
    """How messages name a transcript: ``project/session`` (``/subpath``)."""
    where = f"{ident['project_key']}/{ident['session_id']}"
    return f"{where}/{ident['subpath']}" if ident.get("subpath") else where


def _json(parts: list[str]) -> str:
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
