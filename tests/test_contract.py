"""The contract, run over every store tier: our kit and the SDK's conformance suite."""

from __future__ import annotations

import pytest
from claude_agent_sdk.testing import run_session_store_conformance

from session_store_protocol.testing import CONTRACT_CHECKS, Check
from tests.support import StoreFactory


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__[6:])
async def test_contract(make_store: StoreFactory, check: Check) -> None:
    """Each store passes each check of the contract kit on a fresh store."""
    await check(make_store)


async def test_sdk_conformance(make_store: StoreFactory) -> None:
    """Each store passes claude_agent_sdk's own conformance suite, asserts enabled."""
    await run_session_store_conformance(make_store)


def test_asserts_are_enabled() -> None:
    """The suite never runs under ``python -O``, which would strip the SDK kit's asserts."""
    if not __debug__:
        pytest.fail("run the tests without -O: the SDK's conformance kit uses assert")
