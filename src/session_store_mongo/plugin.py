"""The ``computeragent.session_stores`` entry point for kind ``mongo``.

With no configuration in code, the builder reads the environment when the first store is
built; importing this module connects to nothing:

- ``MONGO_URL`` (required), ``MONGO_DATABASE`` and ``MONGO_COLLECTION_PREFIX`` (the defaults);
- ``MONGO_ALLOWED_DATABASES`` (comma-separated names) and ``MONGO_ALLOWED_DATABASE_PREFIX``
  (e.g. ``tenant_``): the databases wire options may choose besides the default;
- ``MONGO_ALLOWED_COLLECTION_PREFIXES`` (comma-separated): likewise for ``collection_prefix``;
- ``MONGO_ENCRYPTION_CONFIG``: a JSON file of ``EncryptionSettings`` (as the CLI's
  ``--encryption-config``): every store encrypts at rest.

Without the allow-lists, a client's wire options cannot move the store off the configured
database and prefix. A harness that wants other settings registers its own builder::

    registry.register("mongo", mongo_session_store_builder({"url": url}), replace=True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from session_store_protocol import hookimpl
from session_store_protocol.hookspecs import Register

from .builder import MongoStoreBuilder, mongo_session_store_builder
from .encryption import EncryptionSettings
from .store import MongoSessionStore

__all__ = ["build_from_environment", "register_session_stores", "settings_from_environment"]

_LISTS = {
    "MONGO_ALLOWED_DATABASES": "allowed_databases",
    "MONGO_ALLOWED_COLLECTION_PREFIXES": "allowed_collection_prefixes",
}
"""Comma-separated environment variables and the builder settings they give."""


class _EnvironmentBuilder:
    """Reads the environment on first build, so that importing the plugin stays free."""

    def __init__(self) -> None:
        self._builder: MongoStoreBuilder | None = None

    def __call__(self, options: Mapping[str, Any] | None) -> MongoSessionStore:
        if self._builder is None:
            self._builder = mongo_session_store_builder(settings_from_environment(os.environ))
        return self._builder(options)

    async def aclose(self) -> None:
        """Close the shared client, if a store was ever built."""
        if self._builder is not None:
            await self._builder.aclose()


def settings_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The builder's server-side settings, as the environment variables above give them."""
    settings: dict[str, Any] = {"url": environ.get("MONGO_URL") or None}
    if environ.get("MONGO_DATABASE"):
        settings["database"] = environ["MONGO_DATABASE"]
    if "MONGO_COLLECTION_PREFIX" in environ:  # set but empty: version 0.1's collection names
        settings["collection_prefix"] = environ["MONGO_COLLECTION_PREFIX"]
    if environ.get("MONGO_ALLOWED_DATABASE_PREFIX"):
        settings["allowed_database_prefix"] = environ["MONGO_ALLOWED_DATABASE_PREFIX"]
    for variable, setting in _LISTS.items():
        names = [name.strip() for name in environ.get(variable, "").split(",")]
        if any(names):
            settings[setting] = [name for name in names if name]
    if environ.get("MONGO_ENCRYPTION_CONFIG"):
        settings["encryption"] = EncryptionSettings.from_file(
            Path(environ["MONGO_ENCRYPTION_CONFIG"])
        )
    return settings


build_from_environment = _EnvironmentBuilder()


@hookimpl
def register_session_stores(register: Register) -> None:
    """Offer kind ``mongo``, configured from the environment (see the module docstring)."""
    register("mongo", build_from_environment)
