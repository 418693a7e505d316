"""The seed's design, ported as the benchmark's baseline: a whole session in one document.

Usage::

    from benchmarks.seed_design import SeedDesignStore

    seed = SeedDesignStore(client["bench_seed"]["sessions"])   # a pymongo async collection
    await seed.append({"project_key": "p", "session_id": "s"}, entries)
    entries = await seed.load({"project_key": "p", "session_id": "s"})

The npm package ``@open-gitagent/session-store-mongo`` 0.2.1, which this project succeeds, kept each
session as one document (its layout: ``session_store_mongo.predecessor``). Its ``append`` read that
document, dropped the new entries whose ``uuid`` it already held, then ``$push``-ed the rest with
``$each`` (upserting a first append); its ``load`` was a ``find_one`` returning ``entries``. This
module redoes that algorithm in async PyMongo, with no improvement, so the benchmark can run it
beside ``MongoSessionStore`` on the same server and data. One thing differs, and not what is
measured: the document's ``_id`` is ``<project>/<session>``, then ``/<subpath>``, so each transcript
the benchmark writes has a document of its own (the package keyed by the session id alone and pushed
a subagent's entries into its session's array). Its costs are the point of the comparison: every
append reads the whole session back, and a session cannot outgrow one BSON document; the server
refuses the ``$push`` that would take it past 16 MB (PyMongo raises ``WriteError``, code 10334
``BSONObjectTooLarge`` on MongoDB).
"""

from __future__ import annotations

import time
from typing import Any

from session_store_protocol.types import SessionKey, SessionStoreEntry

__all__ = ["SeedDesignStore"]


class SeedDesignStore:
    """The seed's one-document-per-session store (append and load only, as the seed had)."""

    def __init__(self, collection: Any) -> None:
        """Store sessions in ``collection`` (a ``pymongo`` async or Motor collection)."""
        self._collection = collection

    @staticmethod
    def document_id(key: SessionKey) -> str:
        """This baseline's ``_id``: ``<project>/<session>``, then ``/<subpath>`` for a subagent."""
        subpath = key.get("subpath")
        base = f"{key['project_key']}/{key['session_id']}"
        return f"{base}/{subpath}" if subpath else base

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Read the session, skip entries whose ``uuid`` it holds, ``$push`` the rest."""
        if not entries:
            return
        document_id = self.document_id(key)
        current = await self._collection.find_one({"_id": document_id})
        held = {e.get("uuid") for e in current["entries"]} if current else set()
        fresh = [e for e in entries if e.get("uuid") is None or e.get("uuid") not in held]
        if not fresh:
            return
        await self._collection.update_one(
            {"_id": document_id},
            {"$push": {"entries": {"$each": fresh}}, "$set": {"mtime": int(time.time() * 1000)}},
            upsert=True,
        )

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return the session's entries, or ``None`` if it was never written."""
        document = await self._collection.find_one({"_id": self.document_id(key)})
        if document is None:
            return None
        entries: list[SessionStoreEntry] = document["entries"]
        return entries

    async def put(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Write a whole session at once (how the benchmark pre-fills it, not a seed method)."""
        await self._collection.replace_one(
            {"_id": self.document_id(key)},
            {"entries": entries, "mtime": int(time.time() * 1000)},
            upsert=True,
        )
