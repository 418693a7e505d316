"""Multi-tenant stores: each tenant's wire config picks its own database, within an allow-list.

Run it against any MongoDB::

    MONGO_URL=mongodb://localhost:27017 python examples/multi_tenant.py [--tenants tenant_a ...]

The harness registers one builder with the URL and ``allowed_database_prefix="tenant_"`` kept
server-side. Every tenant's store is built from that tenant's wire config and shares the
builder's one client (one connection pool). Tenants cannot see each other's sessions, and a wire
config that asks for a database outside the allow-list or brings its own ``url`` is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from session_store_mongo import MongoSessionStore, mongo_session_store_builder
from session_store_protocol import InvalidStoreOptionsError, SessionKey, StoreRegistry

PROJECT_KEY = "-srv-support-bot"
SESSION_ID = "ticket-4711"
"""Both tenants use the same session id on purpose: isolation must not rely on unique ids."""
REFUSED_CONFIGS: list[dict[str, Any]] = [
    {"kind": "mongo", "options": {"database": "admin"}},
    {"kind": "mongo", "options": {"database": "billing"}},
    {"kind": "mongo", "options": {"database": "tenant_x", "url": "mongodb://attacker.example"}},
]


def wire_config(tenant_database: str) -> dict[str, Any]:
    """What a tenant's client sends: the kind and a non-secret database choice."""
    return {"kind": "mongo", "options": {"database": tenant_database}}


async def run(tenants: Sequence[str]) -> None:
    builder = mongo_session_store_builder(
        {"url": os.environ["MONGO_URL"], "allowed_database_prefix": "tenant_"}
    )
    registry = StoreRegistry()
    registry.register("mongo", builder, replace=True)
    try:
        stores = {tenant: registry.build(wire_config(tenant)) for tenant in tenants}
        clients = {
            id(store.client) for store in stores.values() if isinstance(store, MongoSessionStore)
        }
        print(f"{len(stores)} tenant stores, {len(clients)} shared MongoDB client")

        key: SessionKey = {"project_key": PROJECT_KEY, "session_id": SESSION_ID}
        for tenant, store in stores.items():
            prompt: Any = {"type": "user", "uuid": "u1", "message": f"question from {tenant}"}
            await store.append(key, [prompt])
        for tenant, store in stores.items():
            messages = [entry.get("message") for entry in await store.load(key) or []]
            print(f"{tenant} sees {SESSION_ID}: {messages}")

        for config in REFUSED_CONFIGS:
            try:
                registry.build(config)
            except InvalidStoreOptionsError as exc:
                print(f"refused {config['options']}: {exc}")
            else:
                raise AssertionError(f"{config} was accepted")
    finally:
        await builder.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tenants", nargs="+", default=["tenant_acme", "tenant_globex"], help="tenant databases"
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args.tenants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
