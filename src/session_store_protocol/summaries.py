"""Lazy access to the SDK's summary fold, shared by every store that keeps summaries.

Usage::

    from session_store_protocol.summaries import load_fold

    fold = load_fold()                      # raises SummariesUnavailableError without the SDK
    summary = fold(previous, key, entries)
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import SummariesUnavailableError
from .types import SessionKey, SessionStoreEntry, SessionSummaryEntry

__all__ = ["INSTALL_HINT", "Fold", "load_fold", "optional_fold", "summaries_available"]

INSTALL_HINT = "pip install 'claude-agent-sdk>=0.1.65'"
"""What to install for summaries: the SDK that owns the fold, at the version this contract
mirrors (named directly, whichever distribution ships this package)."""

Fold = Callable[
    [SessionSummaryEntry | None, SessionKey, list[SessionStoreEntry]], SessionSummaryEntry
]


def load_fold() -> Fold:
    """Return ``claude_agent_sdk.fold_session_summary``, importing the SDK on first use.

    Raises:
        SummariesUnavailableError: claude-agent-sdk is not installed; says what to install.
    """
    try:
        from claude_agent_sdk import fold_session_summary
    except ImportError as exc:
        raise SummariesUnavailableError(
            "session summaries are folded by claude-agent-sdk, which is not installed; "
            f"run: {INSTALL_HINT}"
        ) from exc
    return fold_session_summary


def optional_fold() -> Fold | None:
    """Return the SDK's fold, or ``None`` where it is not installed (writers then skip it)."""
    try:
        return load_fold()
    except SummariesUnavailableError:
        return None


def summaries_available() -> bool:
    """Tell whether the SDK's fold can be imported."""
    return optional_fold() is not None
