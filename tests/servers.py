"""Helpers for tests that run SecantusDB servers of their own and inject faults into them.

Usage::

    from tests.servers import fail_command, running_server, transcript_batch

    with running_server(secantusd, "--enable-test-commands") as server:
        async with AsyncMongoClient(server.url) as admin:
            await fail_command(admin, ["insert"], errorCode=2)   # the next insert fails
            ...

    async with ReplyDropper(server.port) as proxy:   # a URL whose replies can be lost
        proxy.lose_replies("insert")                 # the next insert runs, its reply is lost
        store = MongoSessionStore(url=proxy.url)

SecantusDB's ``failCommand`` (with ``--enable-test-commands``) supports ``errorCode`` and
``closeConnection``, both applied *before* the command runs, ``blockConnection`` and
``writeConcernError`` (the command runs, then the reply carries the error). A reply lost
*after* the write is provoked with ``ReplyDropper``, a TCP proxy that forwards a command and
then drops the connection instead of its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.soak import transcript_batch
from devtools.secantus import SecantusServer
from pymongo import AsyncMongoClient, MongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from session_store_protocol import SessionKey, SessionStore, SessionStoreEntry
from session_store_protocol.errors import StoreUnavailableError

__all__ = [
    "FaultedCommands",
    "ReplyDropper",
    "append_like_sdk",
    "assert_each_once_in_order",
    "fail_command",
    "failpoint_off",
    "running_server",
    "server_with_users",
    "transcript_batch",
]

SDK_APPEND_ATTEMPTS = 3
"""Attempts per batch, as ``claude_agent_sdk``'s transcript mirror makes them."""


@contextlib.contextmanager
def running_server(
    executable: Path,
    *extra_args: str,
    storage_path: str = ":memory:",
    port: int | None = None,
    client_options: dict[str, Any] | None = None,
    stop_timeout: float = 10,
) -> Iterator[SecantusServer]:
    """Run a SecantusDB server for the ``with`` block; stop it (or what is left) afterwards.

    ``stop_timeout`` is how long SIGTERM gets before SIGKILL.
    """
    server = SecantusServer(
        executable,
        port=port,
        storage_path=storage_path,
        extra_args=extra_args,
        client_options=client_options,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(stop_timeout)


@contextlib.contextmanager
def server_with_users(
    executable: Path, storage_path: str, users: Mapping[str, tuple[str, list[dict[str, str]]]]
) -> Iterator[SecantusServer]:
    """A SecantusDB with ``--auth`` whose users (name: password and roles) exist.

    Provisioned the way SecantusDB asks: started once without ``--auth`` on ``storage_path`` to
    run ``createUser`` in ``admin``, then restarted on the same storage and port with ``--auth``.
    """
    with running_server(executable, storage_path=storage_path) as setup:
        port = setup.port
        client: MongoClient[dict[str, Any]]
        with MongoClient(setup.url) as client:
            for user, (password, roles) in users.items():
                client.admin.command("createUser", user, pwd=password, roles=roles)
    with running_server(executable, "--auth", storage_path=storage_path, port=port) as server:
        yield server


async def fail_command(
    admin: AsyncMongoClient[Any],
    commands: Sequence[str],
    *,
    times: int = 1,
    skip: int = 0,
    **data: Any,
) -> None:
    """Arm SecantusDB's ``failCommand`` failpoint for ``commands`` (``data`` as mongod takes it)."""
    mode = {"times": times, "skip": skip} if skip else {"times": times}
    await admin.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": mode,
            "data": {"failCommands": list(commands), **data},
        }
    )


async def failpoint_off(admin: AsyncMongoClient[Any]) -> None:
    """Disarm the ``failCommand`` failpoint."""
    await admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def assert_each_once_in_order(loaded: list[SessionStoreEntry] | None, uuids: Sequence[str]) -> None:
    """Assert the transcript holds exactly ``uuids``, each once, in that order."""
    assert loaded is not None, "the transcript is missing"
    stored = [entry.get("uuid") for entry in loaded]
    assert len(stored) == len(set(stored)), f"duplicated entries: {len(stored)} stored"
    assert stored == list(uuids)


async def append_like_sdk(
    store: SessionStore,
    key: SessionKey,
    batch: list[SessionStoreEntry],
    *,
    attempts: int = SDK_APPEND_ATTEMPTS,
    backoff: float = 0.2,
) -> int:
    """Append as the SDK's mirror does: retry the same batch on failure; return the failures.

    Raises:
        StoreUnavailableError: Every attempt failed.
    """
    for attempt in range(attempts):
        try:
            await store.append(key, batch)
            return attempt
        except StoreUnavailableError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class FaultedCommands(CommandListener):
    """A driver listener recording the commands that failed or reported a write concern error.

    Pass it as ``client_options={"event_listeners": [listener]}`` to prove a fault fired even
    when the driver's retry hid it from the caller.
    """

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        """Nothing to record when a command starts."""

    def succeeded(self, event: CommandSucceededEvent) -> None:
        """Record a command whose reply carried a write concern error."""
        if "writeConcernError" in event.reply:
            self.names.append(event.command_name)

    def failed(self, event: CommandFailedEvent) -> None:
        """Record a command that failed (an error reply or a broken connection)."""
        self.names.append(event.command_name)


_HEADER = struct.Struct("<iiii")
_OP_MSG = 2013


def _command_name(op_code: int, body: bytes) -> str | None:
    """The command an OP_MSG carries: the first key of its body section (kind 0)."""
    # flagBits (4 bytes), section kind (1), then a BSON document: length (4), element type (1),
    # and the element's name as a C string.
    if op_code != _OP_MSG or len(body) < 11 or body[4] != 0:
        return None
    end = body.find(b"\x00", 10)
    return body[10:end].decode(errors="replace") if end > 0 else None


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, int, int, int, bytes]:
    header = await reader.readexactly(_HEADER.size)
    length, request_id, response_to, op_code = _HEADER.unpack(header)
    body = await reader.readexactly(length - _HEADER.size)
    return header, request_id, response_to, op_code, body


class ReplyDropper:
    """A TCP proxy in front of a server that can lose the replies to chosen commands.

    The server receives and runs the command; the proxy then closes the client's connection
    instead of passing the reply on, as when a network drops after the write landed.
    """

    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._listener: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._command: str | None = None
        self._skip = 0
        self._remaining = 0
        self.lost = 0
        """How many replies the proxy has lost so far."""

    @property
    def port(self) -> int:
        """The proxy's port on 127.0.0.1."""
        assert self._listener is not None, "the proxy is not started"
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """A URL that reaches the server through the proxy."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def lose_replies(self, command: str, *, times: int = 1, skip: int = 0) -> None:
        """Lose the replies to ``times`` ``command`` commands (after they ran), ``skip`` first."""
        self._command, self._skip, self._remaining = command, skip, times

    async def __aenter__(self) -> ReplyDropper:
        self._listener = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._listener is not None
        self._listener.close()
        for writer in list(self._writers):
            writer.close()
        await self._listener.wait_closed()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self._server_port)
        self._writers |= {client_writer, server_writer}
        doomed: set[int] = set()  # request ids whose reply is to be lost

        async def requests() -> None:
            while True:
                header, request_id, _, op_code, body = await _read_message(client_reader)
                if self._remaining and _command_name(op_code, body) == self._command:
                    if self._skip:
                        self._skip -= 1
                    else:
                        self._remaining -= 1
                        doomed.add(request_id)
                server_writer.write(header + body)
                await server_writer.drain()

        async def replies() -> None:
            while True:
                header, _, response_to, _, body = await _read_message(server_reader)
                if response_to in doomed:
                    self.lost += 1
                    return
                client_writer.write(header + body)
                await client_writer.drain()

        relays = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
        try:
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for relay in relays:
                relay.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            for writer in (client_writer, server_writer):
                writer.close()
                self._writers.discard(writer)
