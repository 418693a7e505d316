"""Install and run SecantusDB, the local MongoDB-wire server used by the tests and demos.

SecantusDB (PyPI ``secantusdb``) is GPL-2.0, so it lives only in its own virtual environment
(``.venv-secantus``) and runs as a separate process; the project never imports it.

Command line::

    python -m devtools.secantus run -- CMD ARGS...   # CMD sees MONGO_URL (and SECANTUSD)

When ``run`` starts the server itself, CMD also sees ``SECANTUS_STARTED`` (the server's URL), so
it can tell a throw-away server from a ``MONGO_URL`` the user chose.
    python -m devtools.secantus serve [--port N] [--storage-path P]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from session_store_mongo.redact import redact_url

SECANTUSDB_VERSION = "0.7.0b3"
VENV_NAME = ".venv-secantus"
REPO_ROOT = Path(__file__).resolve().parent.parent
_STAMP_NAME = ".secantusdb-version"
_LOG_TAIL_CHARS = 3000
_SECRET_OPTION = re.compile(
    r"([?&](?:tlsCertificateKeyFilePassword|authMechanismProperties)=)[^&#]*", re.IGNORECASE
)


def ensure_installed(root: Path) -> Path:
    """Return the ``secantusd-py`` executable, installing SecantusDB first if needed.

    The environment variable ``SECANTUSD`` (path to an existing ``secantusd-py``) skips the
    installation. Otherwise SecantusDB is pip-installed into ``<root>/.venv-secantus``, once per
    version: a stamp file in that venv records the installed version.

    Args:
        root: Directory that holds (or will hold) the ``.venv-secantus`` virtual environment.

    Returns:
        Path of the ``secantusd-py`` executable.

    Raises:
        FileNotFoundError: ``SECANTUSD`` is set but names no file.
        subprocess.CalledProcessError: Creating the venv or installing SecantusDB failed.
    """
    if configured := os.environ.get("SECANTUSD"):
        executable = Path(configured)
        if not executable.is_file():
            raise FileNotFoundError(f"SECANTUSD={configured} is not a file")
        return executable
    venv = root / VENV_NAME
    executable = venv / "bin" / "secantusd-py"
    stamp = venv / _STAMP_NAME
    if executable.exists() and stamp.exists() and stamp.read_text().strip() == SECANTUSDB_VERSION:
        return executable
    print(f"devtools.secantus: installing SecantusDB into {venv}", file=sys.stderr)
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    requirement = f"secantusdb=={SECANTUSDB_VERSION}"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)
    stamp.write_text(SECANTUSDB_VERSION + "\n")
    return executable


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR, as the server sets it: a killed server's TIME_WAIT sockets don't count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise RuntimeError(f"port 127.0.0.1:{port} is in use: {error}") from error


class SecantusServer:
    """One ``secantusd-py`` process on 127.0.0.1, restartable on the same port.

    Each start gets a private scratch directory holding an empty ``secantusd.toml`` (so a
    ``./secantusd.toml`` or ``~/.secantus/secantusd.toml`` cannot change the test server), the
    server log unless ``log_path`` is given, and the temporary WiredTiger home of ``:memory:``
    storage (the server leaks that directory when it is killed or fails to start). The scratch
    directory is removed when the process has exited.
    """

    def __init__(
        self,
        executable: Path,
        *,
        port: int | None = None,
        storage_path: str = ":memory:",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe a server; nothing runs until :meth:`start`.

        Args:
            executable: The ``secantusd-py`` launcher.
            port: TCP port; a free one is picked now when omitted, and kept across restarts.
            storage_path: WiredTiger home directory, or ``":memory:"`` for a throw-away one.
            extra_args: More ``secantusd-py`` flags, e.g. ``--enable-test-commands``, ``--auth``,
                ``--sync-on-commit``, ``--tls-cert-file``/``--tls-key-file``/``--tls-ca-file``.
            log_path: File that receives the server's stdout and stderr (appended to).
            client_options: MongoClient keyword options for the readiness ping, e.g.
                ``{"tls": True, "tlsCAFile": ...}`` when the server runs with TLS.
        """
        self.executable = executable
        self._port = free_port() if port is None else port
        self.storage_path = storage_path
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.client_options = dict(client_options or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        return self._port

    @property
    def url(self) -> str:
        """Connection string; add TLS or credential options yourself when the server needs them."""
        return f"mongodb://127.0.0.1:{self._port}/?directConnection=true"

    @property
    def pid(self) -> int:
        """Process id of the running server.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._process is None:
            raise RuntimeError("SecantusDB server is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server process has been started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30) -> None:
        """Launch the server and wait until it answers ``ping``.

        Args:
            timeout: Seconds to wait for the first successful ``ping``.

        Raises:
            RuntimeError: Already running, or the server exited or stayed silent; the message
                ends with the tail of the server log.
        """
        if self._process is not None:
            raise RuntimeError(f"SecantusDB server already started (pid {self._process.pid})")
        # Another server on the port would answer our ping while this one dies on bind.
        _check_port_free(self._port)
        self._scratch = Path(tempfile.mkdtemp(prefix="secantus-"))
        config = self._scratch / "secantusd.toml"
        config.touch()
        log_path = self.log_path or self._scratch / "secantusd.log"
        command = [
            str(self.executable), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(self._port), "--storage-path", self.storage_path, *self.extra_args,
        ]  # fmt: skip
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(self._scratch)},
                start_new_session=True,  # Ctrl-C in a terminal must not reach it: we stop it
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                problem = f"exited with code {self._process.returncode}"
            elif self._answers_ping():
                return
            elif time.monotonic() > deadline:
                problem = f"did not answer ping within {timeout:g}s"
            else:
                time.sleep(0.1)
                continue
            tail = log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
            self.kill()  # also removes the scratch directory, which may hold the log
            raise RuntimeError(f"SecantusDB ({' '.join(command)}) {problem}; log:\n{tail}")

    def _answers_ping(self) -> bool:
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.url, serverSelectionTimeoutMS=250, connectTimeoutMS=250, **self.client_options
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10) -> None:
        """Stop the server with SIGTERM (a clean shutdown), SIGKILL if it outlasts the timeout.

        Args:
            timeout: Seconds to wait for the process to exit before sending SIGKILL.
        """
        deadline = time.monotonic() + timeout
        while self._process is not None and self._process.poll() is None:
            if time.monotonic() >= deadline:
                self._process.kill()
                break
            # Repeated because SecantusDB's main thread sleeps in Event.wait() and so misses a
            # SIGTERM that the kernel hands to another thread (about 1 stop in 25).
            self._process.send_signal(signal.SIGTERM)  # signals only its pid
            if not self._exits_within(0.2):
                # Its accept thread sees the shutdown only on the next connection; without one
                # the shutdown waits 2 s for that thread.
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
                self._exits_within(min(3.0, max(0.0, deadline - time.monotonic())))
        self._reap()

    def _exits_within(self, seconds: float) -> bool:
        assert self._process is not None
        try:
            self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """Kill the server with SIGKILL, like a crash; :meth:`start` may be called again."""
        if self._process is not None:
            self._process.kill()
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        if self._scratch is not None:  # also when start() was interrupted before Popen
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> SecantusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _run_child(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run command to completion and return its exit status (128+N when killed by signal N)."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as error:
        print(f"devtools.secantus: cannot run {command[0]}: {error}", file=sys.stderr)
        return 127
    try:
        try:
            returncode = child.wait()
        except KeyboardInterrupt:
            # The terminal sent the same SIGINT to the child: let it finish its own cleanup.
            try:
                returncode = child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                return 128 + signal.SIGINT
    finally:
        if child.poll() is None:  # SIGTERM/second Ctrl-C on us: never leave the child behind
            child.kill()
            child.wait()
    return 128 - returncode if returncode < 0 else returncode


def run(command: Sequence[str]) -> int:
    """Run command against MONGO_URL, or against a fresh in-memory SecantusDB.

    Args:
        command: Program and arguments to run.

    Returns:
        The command's exit status.
    """
    if url := os.environ.get("MONGO_URL"):
        print(f"devtools.secantus: using MONGO_URL={redact_url(url)}", file=sys.stderr)
        return _run_child(command, os.environ)
    executable = ensure_installed(REPO_ROOT)
    server = SecantusServer(executable, extra_args=["--enable-test-commands"])
    try:
        server.start()
        print(
            f"devtools.secantus: started SecantusDB {server.url} (pid {server.pid}, {executable})",
            file=sys.stderr,
        )
        env = {
            **os.environ,
            "MONGO_URL": server.url,
            "SECANTUSD": str(executable),
            "SECANTUS_STARTED": server.url,
        }
        return _run_child(command, env)
    finally:
        server.stop()


def serve(port: int | None, storage_path: str) -> int:
    """Run a SecantusDB server in the foreground until Ctrl-C or SIGTERM.

    Args:
        port: TCP port, or None for a free one.
        storage_path: WiredTiger home directory, or ``":memory:"``.

    Returns:
        Exit status: 0 after Ctrl-C, 1 if the server died by itself.
    """
    server = SecantusServer(ensure_installed(REPO_ROOT), port=port, storage_path=storage_path)
    try:
        server.start()
        print(
            f"SecantusDB listening: {server.url} (pid {server.pid}); Ctrl-C stops it",
            file=sys.stderr,
        )
        while server.running:
            time.sleep(0.5)
        print("devtools.secantus: the server exited on its own", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` blocks that stop the server


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.secantus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="subcommand", required=True)
    run_parser = commands.add_parser("run", help="run CMD with MONGO_URL set")
    run_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    serve_parser = commands.add_parser("serve", help="run a server until Ctrl-C")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--storage-path", default=":memory:")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if args.subcommand == "serve":
            return serve(args.port, args.storage_path)
        command: list[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            run_parser.error("missing command: run -- CMD ARGS...")
        return run(command)
    except KeyboardInterrupt:  # e.g. while the server starts; it has been stopped by now
        return 128 + signal.SIGINT
    except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
        print(f"devtools.secantus: {error}", file=sys.stderr)  # no traceback: the message says it
        return 1


if __name__ == "__main__":
    sys.exit(main())
