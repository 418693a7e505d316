"""The pluggy hook a plugin implements to offer store kinds.

Usage, in a plugin module named by a ``computeragent.session_stores`` entry point::

    from session_store_protocol import hookimpl

    @hookimpl
    def register_session_stores(register):
        register("redis", build_redis_store)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from .types import SessionStore

__all__ = ["PROJECT_NAME", "Builder", "Register", "hookimpl", "hookspec"]

PROJECT_NAME = "session_store"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Builder = Callable[[Mapping[str, Any] | None], SessionStore]
"""Builds a store from wire options (``None`` when the client sent none)."""

Register = Callable[[str, Builder], None]
"""The callback a plugin calls once per kind it offers."""


@hookspec
def register_session_stores(register: Register) -> None:
    """Register the store kinds this plugin offers.

    Called once per registry, lazily, with keyword arguments only. Call
    ``register(kind, builder)`` for each kind; ``kind`` is a non-empty string such as
    ``"mongo"``, and ``builder(options)`` returns a store for the wire options a client sent.

    A builder must not trust its options: they come from the wire. It accepts only non-secret,
    validated settings and raises ``InvalidStoreOptionsError`` for anything else. Keep
    credentials and URLs in the builder's server-side defaults.

    Registering a kind another plugin already registered is a ``DuplicateKindError`` naming
    both plugins. An exception raised here is reported by the registry, and this plugin's
    kinds are left out while the other plugins still load.

    Args:
        register: ``register(kind, builder)`` adds one store kind.
    """
