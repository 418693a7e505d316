"""The ``computeragent.session_stores`` entry point for kind ``mongo``.

With no configuration in code, the builder reads ``MONGO_URL`` (and optionally
``MONGO_DATABASE``) when the first store is built; importing this module connects to nothing.
A harness that wants other settings registers its own builder::

    registry.register("mongo", mongo_session_store_builder({"url": url}), replace=True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from session_store_protocol import hookimpl
from session_store_protocol.hookspecs import Register

from .builder import MongoStoreBuilder
from .store import MongoSessionStore

__all__ = ["build_from_environment", "register_session_stores"]


class _EnvironmentBuilder:
    """Reads the environment on first build, so that importing the plugin stays free."""

    def __init__(self) -> None:
        self._builder: MongoStoreBuilder | None = None

    def __call__(self, options: Mapping[str, Any] | None) -> MongoSessionStore:
        if self._builder is None:
            defaults: dict[str, Any] = {"url": os.environ.get("MONGO_URL") or None}
            if os.environ.get("MONGO_DATABASE"):
                defaults["database"] = os.environ["MONGO_DATABASE"]
            self._builder = MongoStoreBuilder(defaults)
        return self._builder(options)

    async def aclose(self) -> None:
        """Close the shared client, if a store was ever built."""
        if self._builder is not None:
            await self._builder.aclose()


build_from_environment = _EnvironmentBuilder()


@hookimpl
def register_session_stores(register: Register) -> None:
    """Offer kind ``mongo``, configured from ``MONGO_URL``."""
    register("mongo", build_from_environment)
