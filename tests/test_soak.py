"""A small soak on the live server: concurrent writers and readers, every transcript checked.

Run with ``make test``; ``benchmarks/soak.py`` runs the full-size soak and reports timings.
"""

from __future__ import annotations

import pytest
from benchmarks.soak import run_soak

pytestmark = pytest.mark.live


async def test_concurrent_writers_and_readers_lose_nothing(mongo_url: str) -> None:
    """20 writers x 50 appends with 4 readers: no errors, every transcript complete, in order."""
    result = await run_soak(mongo_url, sessions=20, appends=50, readers=4, max_seconds=120)
    assert result.errors == 0
    assert result.complete
    assert result.appends == 20 * 50


async def test_soak_refuses_remote_servers() -> None:
    """The soak runs against loopback servers only."""
    with pytest.raises(ValueError, match="loopback"):
        await run_soak("mongodb://db.example.com:27017/", sessions=1, appends=1)
