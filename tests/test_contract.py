"""The contract, run over every store tier: our kit and the SDK's conformance suite."""

from __future__ import annotations

import sys
import unittest

import pytest
from claude_agent_sdk.testing import run_session_store_conformance

from session_store_protocol import InMemorySessionStore, SessionKey, SessionStoreError
from session_store_protocol.testing import (
    AWKWARD_BATCHES,
    CONTRACT_CHECKS,
    Check,
    check_summaries_match_a_full_fold,
    run_contract,
)
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


async def test_refusals_read_the_same_in_every_store(make_store: StoreFactory) -> None:
    """Each awkward batch is refused by every store with the reference store's exact message."""
    store, reference = make_store(), InMemorySessionStore()
    key: SessionKey = {"project_key": "proj", "session_id": "messages"}
    refused = 0
    for batch in AWKWARD_BATCHES:
        try:
            await reference.append(key, batch)
            continue
        except SessionStoreError as exc:
            expected = f"{type(exc).__name__}: {exc}"
        with pytest.raises(SessionStoreError) as caught:
            await store.append(key, batch)
        assert f"{caught.typename}: {caught.value}" == expected
        refused += 1
    assert refused >= 15


async def test_summary_checks_skip_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without claude-agent-sdk the summary checks report a skip, and run_contract names them."""
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # its import now fails
    with pytest.raises(unittest.SkipTest):
        await check_summaries_match_a_full_fold(InMemorySessionStore)
    skipped = await run_contract(InMemorySessionStore)
    assert skipped == [
        "check_summaries_match_a_full_fold",
        "check_concurrent_summaries_stay_consistent",
    ]
