"""The CLI's global options, and running a command's work on one store with one-line errors.

Usage::

    settings = Settings(url=url, database="db", collection_prefix="", project=None, timeout=None)
    rows = settings.run(lambda store: store.list_sessions(settings.project_key))
    settings.fail("session s not found")          # one red line on stderr, exit 1

``run`` opens one ``MongoSessionStore`` (one client; encrypted with the settings of
``--encryption-config``, a JSON file that keeps key material off the command line) inside
``asyncio.run``, hands it to the command's coroutine, and closes it. Every error ends as one
line on stderr that names the command (``error: list: ...``): exit 1 for store and connection
failures, exit 2 for usage errors; passwords are scrubbed and the text is shown literally
(``literal``). A failure on the server (unreachable, a wrong password, an operation refused to
the user) is told as the command's, with the host and the cause, never the library call's.
Ctrl-C (SIGINT) or SIGTERM in a command that says what it leaves behind (``run(...,
interrupted=...)``) prints that on one line and exits 128 + the signal's number (130, 143),
after the command's cleanup ran (an export's temporary files are removed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.text import Text

from session_store_protocol.errors import (
    EncryptionKeyError,
    InvalidKeyError,
    InvalidStoreOptionsError,
    SessionStoreError,
    StoreAuthorizationError,
    StoreUnavailableError,
)
from session_store_protocol.types import SessionKey

from ..encryption import EncryptionSettings, settings_file_fault
from ..layout import validate_collection_prefix, validate_database_name
from ..redact import password_of_url, redact_text
from ..store import MongoSessionStore
from .layout import project_key_for_directory
from .literal import literal

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "MAX_RECONNECT_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "MIN_TIMEOUT_SECONDS",
    "Settings",
    "parse_duration",
    "parse_reconnect_timeout",
    "parse_timeout",
]

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT
"""Ctrl-C: the shell's convention (128 + SIGINT); SIGTERM exits 128 + SIGTERM (143)."""
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RECONNECT_SECONDS = 86400.0
"""``--reconnect-timeout``'s ceiling: a day."""
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1.5w``... as a ``timedelta``.

    Raises:
        ValueError: Not a number and a unit s/m/h/d/w, or longer than a ``timedelta`` holds.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}: use a number and a unit s/m/h/d/w, e.g. 30d")
    seconds = float(match["amount"]) * _UNIT_SECONDS[match["unit"]]
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"bad duration {text!r}: longer than {timedelta.max.days} days") from None


def parse_timeout(text: str) -> float:
    """``--timeout``: seconds between 0.1 and an hour (``nan`` and ``inf`` are refused).

    Raises:
        typer.BadParameter: Not a number in that range (a usage error naming the range).
    """
    return _seconds(text, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)


def parse_reconnect_timeout(text: str) -> float:
    """``--reconnect-timeout``: seconds between 0 (no retry) and a day.

    Raises:
        typer.BadParameter: Not a number in that range (a usage error naming the range).
    """
    return _seconds(text, 0.0, MAX_RECONNECT_SECONDS)


def _seconds(text: str, least: float, most: float) -> float:
    """``text`` as seconds from ``least`` to ``most``; ``nan``, ``inf`` and ``1e400`` are not."""
    try:
        seconds = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and least <= seconds <= most):
        raise typer.BadParameter(f"{text} is not between {least:g} and {most:g} seconds")
    return seconds


@dataclass
class Settings:
    """The global options, shared by every command through ``ctx.obj``."""

    url: str | None
    database: str
    collection_prefix: str
    project: str | None
    timeout: float | None
    create_indexes: bool = True
    encryption_config: Path | None = None
    """``--encryption-config``: the encryption settings of an encrypted store."""
    command: str = "session-store-mongo"
    """The command run (``import``, ``delete``...), as errors name it."""
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def project_key(self) -> str:
        """``--project``, or the current directory's key as the SDK computes it."""
        return self.project if self.project is not None else project_key_for_directory()

    def session_key(self, session_id: str, subpath: str | None = None) -> SessionKey:
        """The store key of a session of ``--project``."""
        key: SessionKey = {"project_key": self.project_key, "session_id": session_id}
        if subpath is not None:
            key["subpath"] = subpath
        return key

    def print_line(self, text: str | Text) -> None:
        """Print one line to stdout as it is, never wrapped (scripts read these lines)."""
        line = text if isinstance(text, Text) else literal(text)
        self.out.print(line, soft_wrap=True, highlight=False)

    def print_error(self, message: str) -> None:
        """Print one red line to stderr, without any password, never wrapped."""
        secret = password_of_url(self.url) if self.url else None
        clean = redact_text(message, [secret] if secret else [])
        self.err.print(
            Text("error: ", style="bold red") + literal(clean), soft_wrap=True, highlight=False
        )

    def print_warning(self, message: str) -> None:
        """Print one yellow line to stderr, without any password, never wrapped."""
        secret = password_of_url(self.url) if self.url else None
        clean = redact_text(message, [secret] if secret else [])
        self.err.print(
            Text("warning: ", style="bold yellow") + literal(clean), soft_wrap=True, highlight=False
        )

    def fail(self, message: str, code: int = EXIT_FAILURE) -> NoReturn:
        """Print ``message`` as one red line on stderr and exit with ``code``."""
        self.print_error(message)
        raise typer.Exit(code)

    def client_options(self) -> dict[str, Any]:
        """Client options for ``--timeout`` (the URL's own options apply otherwise)."""
        if self.timeout is None:
            return {}
        milliseconds = int(self.timeout * 1000)
        return {"serverSelectionTimeoutMS": milliseconds, "connectTimeoutMS": milliseconds}

    def run(
        self,
        operation: Callable[[MongoSessionStore], Awaitable[T]],
        *,
        writes: bool = False,
        interrupted: Callable[[], str] | None = None,
    ) -> T:
        """Run ``operation`` on one store opened from the global options, then close it.

        Args:
            operation: The command's work, given the open store.
            writes: The command writes, so it creates missing indexes first, unless
                ``--no-create-indexes``. Reading never creates indexes (a read-only user can).
            interrupted: On Ctrl-C or SIGTERM, called for the one line to print on stderr
                (what the command leaves behind, and how to go on) before exit 130 or 143.
                ``None``: either signal propagates as ``KeyboardInterrupt``, for a command
                whose normal end it is.
        """
        if not self.url:
            self.fail("no MongoDB URL: pass --url or set MONGO_URL", EXIT_USAGE)
        url = self.url

        async def run() -> T:
            validate_database_name(self.database)
            validate_collection_prefix(self.collection_prefix)
            encryption = None
            if self.encryption_config is not None:
                encryption = EncryptionSettings.from_file(self.encryption_config)
            try:
                store = MongoSessionStore(
                    url=url,
                    database=self.database,
                    collection_prefix=self.collection_prefix,
                    client_options=self.client_options(),
                    create_indexes=writes and self.create_indexes,
                    encryption=encryption,
                )
            except EncryptionKeyError as exc:
                # Nothing connected yet: libmongocrypt refused the file's master key settings.
                assert self.encryption_config is not None  # only an encrypted store raises it
                raise settings_file_fault(self.encryption_config, exc) from None
            async with store:
                with _StopOnSignals() as stop:
                    try:
                        return await operation(store)
                    except asyncio.CancelledError:
                        if stop.signal is None:
                            raise
                        raise _Interrupted(stop.signal) from None

        library_log = logging.getLogger("session_store_mongo")
        warning_lines = _WarningLines(self)
        library_log.addHandler(warning_lines)
        try:
            return asyncio.run(run())
        except (KeyboardInterrupt, _Interrupted) as exc:
            if interrupted is None:
                raise KeyboardInterrupt from None
            number = exc.signal if isinstance(exc, _Interrupted) else signal.SIGINT
            self.fail(interrupted(), 128 + number)
        except (InvalidStoreOptionsError, InvalidKeyError) as exc:
            # The options or arguments given: a usage error.
            self.fail(f"{self.command}: {exc}", EXIT_USAGE)
        except StoreAuthorizationError as exc:
            self.fail(self._not_authorized(exc, writes=writes))
        except (SessionStoreError, PyMongoError, OSError) as exc:
            self.fail(f"{self.command}: {_failure(exc)}")
        finally:
            library_log.removeHandler(warning_lines)

    def _not_authorized(self, exc: StoreAuthorizationError, *, writes: bool) -> str:
        """The command (not the library call inside it) the server refused to this user."""
        text = f"{self.command}: not authorized on {exc.hosts}: {exc.reason}"
        if writes and self.create_indexes and "createindex" in exc.reason.lower():
            text += (
                " (a user allowed to create indexes runs ensure-indexes once; then pass "
                "--no-create-indexes)"
            )
        return text


class _Interrupted(Exception):
    """The command's work was stopped by a signal (SIGINT or SIGTERM)."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.signal = number


class _StopOnSignals:
    """Cancel the running task on SIGINT or SIGTERM, again until the cancellation lands.

    Once is not enough: ``asyncio.wait_for`` before Python 3.12, which PyMongo awaits around
    reads, drops a cancellation that arrives as its read completes, and an export then ran to
    its end. So the task is cancelled again every ``_RECANCEL_SECONDS`` until the caller
    catches the ``CancelledError``. SIGTERM, which would otherwise kill the process on the
    spot, thereby ends a command the way Ctrl-C does, cleanup included. A second signal ends it
    at once, wherever the process is (a write to a pipe nobody reads blocks the event loop, so
    a cancellation cannot reach it there).
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)
    _RECANCEL_SECONDS = 0.1

    def __init__(self) -> None:
        self.signal: int | None = None
        """The first signal received, if any."""
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._done = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignals:
        for number in self._SIGNALS:
            self._previous[number] = signal.signal(number, self._received)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done = True
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        # Taken back, so that closing the store afterwards is not treated as cancelled.
        uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
        while self.signal is not None and uncancel is not None and uncancel():
            pass

    def _received(self, number: int, frame: object) -> None:
        if self.signal is not None:
            raise _Interrupted(self.signal)
        self.signal = number
        self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._done or self._task is None or self._task.done():
            return
        self._task.cancel()
        self._loop.call_later(self._RECANCEL_SECONDS, self._cancel)


def _failure(exc: Exception) -> str:
    """What failed, in the command's words: the server and the cause, not the library call."""
    if isinstance(exc, StoreUnavailableError) and exc.hosts and exc.reason:
        return f"failed on {exc.hosts}: {exc.reason}"
    return str(exc) or type(exc).__name__


class _WarningLines(logging.Handler):
    """The library's warnings (a URL option the driver ignores...) as the CLI's one-line kind."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(logging.WARNING)
        self._settings = settings

    def emit(self, record: logging.LogRecord) -> None:
        self._settings.print_warning(record.getMessage())
