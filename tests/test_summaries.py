"""The SDK's fold loaded ahead of need: off the calling thread, its failures left to load_fold."""

from __future__ import annotations

import sys
import threading

import pytest

from session_store_protocol import summaries
from session_store_protocol.errors import SummariesUnavailableError


def _run_background_load(monkeypatch: pytest.MonkeyPatch) -> list[threading.ExceptHookArgs]:
    """Start the background load, wait for it, and return what reached ``threading.excepthook``."""
    reported: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", reported.append)
    summaries.load_fold_in_background()
    for thread in threading.enumerate():
        if thread.name == "load-fold":
            thread.join(timeout=30)
            assert not thread.is_alive()
    return reported


def test_background_load_imports_the_fold_off_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fold is loaded by a thread of its own, so the caller goes on at once."""
    loaded_by: list[str] = []
    original = summaries.load_fold

    def load() -> summaries.Fold:
        loaded_by.append(threading.current_thread().name)
        return original()

    monkeypatch.setattr(summaries, "load_fold", load)
    assert _run_background_load(monkeypatch) == []
    assert loaded_by == ["load-fold"]
    from claude_agent_sdk import fold_session_summary

    assert original() is fold_session_summary


def test_background_load_without_the_sdk_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the SDK the thread stays silent; load_fold still raises in its caller."""
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # its import now fails
    assert _run_background_load(monkeypatch) == []
    with pytest.raises(SummariesUnavailableError, match="pip install"):
        summaries.load_fold()


def test_background_load_leaves_any_failure_to_load_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that fails otherwise (a broken SDK) prints no traceback from the thread."""

    def broken() -> summaries.Fold:
        raise RuntimeError("broken SDK")

    monkeypatch.setattr(summaries, "load_fold", broken)
    assert _run_background_load(monkeypatch) == []
