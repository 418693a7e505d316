"""Lazy access to the SDK's summary fold, shared by every store that keeps summaries.

Usage::

    from session_store_protocol.summaries import load_fold

    fold = load_fold()                      # raises SummariesUnavailableError without the SDK
    summary = fold(previous, key, entries)

    load_fold_in_background()               # a command that folds later, after other work

Importing the SDK takes a second or more of CPU (it brings ``mcp`` and ``pydantic``), and the
first fold pays it while everything else waits. A command that knows it will fold (the CLI's
``import``) starts the import in a thread at once, so it overlaps reading files and waiting
on the server; the first ``load_fold`` then waits only for what is left of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from .errors import SummariesUnavailableError
from .types import SessionKey, SessionStoreEntry, SessionSummaryEntry

__all__ = [
    "INSTALL_HINT",
    "Fold",
    "load_fold",
    "load_fold_in_background",
    "optional_fold",
    "summaries_available",
]

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


def load_fold_in_background() -> None:
    """Start importing the SDK's fold in a daemon thread; return at once.

    A later ``load_fold`` waits for that import (Python's import lock) instead of starting
    its own, and raises whatever it raised: a failure here is left for ``load_fold`` to
    report where it is called, so this thread never prints one.
    """

    def load() -> None:
        with contextlib.suppress(Exception):  # ``load_fold`` raises it again, in its caller
            load_fold()

    threading.Thread(target=load, name="load-fold", daemon=True).start()


def optional_fold() -> Fold | None:
    """Return the SDK's fold, or ``None`` where it is not installed (writers then skip it)."""
    try:
        return load_fold()
    except SummariesUnavailableError:
        return None


def summaries_available() -> bool:
    """Tell whether the SDK's fold can be imported."""
    return optional_fold() is not None
