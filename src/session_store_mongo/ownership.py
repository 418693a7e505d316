"""The ownership check: the store writes only into collections that hold nothing but its own data.

Usage::

    from session_store_mongo.ownership import check_owned

    await check_owned(collections)      # a layout.Collections; or ForeignCollectionError

``MongoSessionStore`` runs it on its three collections once per client, database and prefix,
in the one-time step that creates its indexes, before any of them is created, and in
``ensure_indexes()``. An
absent or empty collection passes. A collection passes when it holds only documents of the
store's shape: string ``project_key``, ``session_id`` and ``subpath``, and a numeric ``seq``
(entries, transcripts and chunks all have them). Anything else, such as a web framework's
sessions or the predecessor's one-document-per-session layout, raises
``ForeignCollectionError`` naming the database, the collection and what it holds; for the
predecessor's layout, with the command that migrates it.

Cost: when the collection has the store's unique key index, the one document that could lack
the key fields beside it is found through that index (no scan). Without it (a new, a foreign, or
an unindexed collection) a query for any document not of the store's shape stops at the first
one; only an unindexed collection full of the store's own documents is read through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from session_store_protocol.errors import ForeignCollectionError

from .layout import KEY_FIELDS, Collections
from .predecessor import PREDECESSOR, looks_like_predecessor, migrate_command

__all__ = ["check_owned"]

_SHAPE = {"project_key": "string", "session_id": "string", "subpath": "string", "seq": "number"}
_NOT_OURS = {"$or": [{field: {"$not": {"$type": kind}}} for field, kind in _SHAPE.items()]}
_FIELDS_SHOWN = 8


async def check_owned(collections: Collections) -> None:
    """Raise unless each collection is absent, empty, or holds only this store's documents.

    Raises:
        ForeignCollectionError: One holds a document the store did not write; the message
            names ``database.collection`` and the fields found, never their values.
    """
    for collection in (collections.entries, collections.sessions, collections.chunks):
        await _check_collection(collections.database.name, collection)


async def _check_collection(database: str, collection: Any) -> None:
    indexes = await collection.index_information()
    keyed = any(_is_key_index(spec) for spec in indexes.values())
    # Beside a unique index on the key fields, a document lacking them all is the only kind
    # that fits (once), and that index finds it; otherwise look for any shape but ours.
    probe: dict[str, Any] = {KEY_FIELDS[0]: None} if keyed else _NOT_OURS
    found = await collection.find_one(probe)
    if found is not None:
        raise ForeignCollectionError(_describe(database, collection.name, found))


def _is_key_index(spec: Mapping[str, Any]) -> bool:
    fields = tuple(field for field, _direction in list(spec.get("key", []))[: len(KEY_FIELDS)])
    return bool(spec.get("unique")) and fields == KEY_FIELDS


def _describe(database: str, collection: str, found: Mapping[str, Any]) -> str:
    # Field names only: values (a web session's _id, say) may be secrets.
    names = sorted(map(str, found))
    fields = ", ".join(names[:_FIELDS_SHOWN]) + (", ..." if len(names) > _FIELDS_SHOWN else "")
    where = f"{database}.{collection}"
    if looks_like_predecessor(found):
        return (
            f"{where} holds sessions in the layout of {PREDECESSOR} (one document per session: "
            f"{fields}), not this store's documents; nothing was written to it. Give this store "
            "collections of its own (the default collection_prefix does) and copy the sessions "
            f"over with: {migrate_command(database, collection)}"
        )
    return (
        f"{where} holds documents this store did not write (one has the fields {fields}); "
        "nothing was written to it. Choose another database or collection_prefix for the store."
    )
