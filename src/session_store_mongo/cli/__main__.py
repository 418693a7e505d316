"""``python -m session_store_mongo.cli``: the same as the ``session-store-mongo`` command.

Usage::

    python -m session_store_mongo.cli --url mongodb://localhost:27017 list
"""

from __future__ import annotations

from . import main

__all__: list[str] = []

main()
