"""What differs between PyMongo's async API and Motor, in one place.

Usage::

    from session_store_mongo.driver import has_client_bulk_write, maybe_await, pymongo_client

    cursor = await maybe_await(collection.aggregate(pipeline))   # awaitable in PyMongo only
    await maybe_await(client.close())                            # likewise
    topology = pymongo_client(client).topology_description       # Motor wraps PyMongo
    if has_client_bulk_write(client): ...                        # PyMongo >= 4.9, Motor >= 3.6
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["has_client_bulk_write", "maybe_await", "pymongo_client"]


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable (PyMongo async ``aggregate``/``close``), else return."""
    if inspect.isawaitable(value):
        return await value
    return value


def pymongo_client(client: Any) -> Any:
    """The PyMongo client behind an injected one: Motor wraps it as ``delegate``.

    Only Motor is unwrapped: on a PyMongo client any unknown attribute is a database.
    """
    if type(client).__module__.startswith("motor."):
        return client.delegate
    return client


def has_client_bulk_write(client: Any) -> bool:
    """Whether the driver offers ``client.bulk_write`` (one command over several collections).

    Looked up on the class: on an instance, any unknown attribute is a database.
    """
    return callable(getattr(type(client), "bulk_write", None))
