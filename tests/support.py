"""Helpers the test modules share (fixtures stay in ``conftest.py``).

Usage::

    from tests.support import FIXTURES, StoreFactory, unique_name
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from session_store_protocol import SessionStore

__all__ = ["FIXTURES", "IN_CI", "MONGO_URL", "REPO_ROOT", "StoreFactory", "unique_name"]

MONGO_URL = os.environ.get("MONGO_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

StoreFactory = Callable[[], SessionStore]


def unique_name(prefix: str = "t") -> str:
    """A database or session name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
