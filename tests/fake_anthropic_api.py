"""A fake Anthropic Messages API on 127.0.0.1, scripted per test, for driving the real Claude Code.

Usage::

    from tests.fake_anthropic_api import FakeAnthropicAPI, Reply

    with FakeAnthropicAPI() as api:
        api.script(Reply.tool_use("Agent", {"prompt": "..."}), Reply.text("done"))
        env = api.client_env()            # ANTHROPIC_BASE_URL, a throwaway key, the egress trap
        ...                               # run the CLI with env
        api.message_requests[0]["messages"]   # what the CLI sent, parsed

``POST /v1/messages`` answers with the next scripted ``Reply`` (``Reply.text("ok")`` once the
script is used up), streamed as server-sent events (``message_start``, ``content_block_start``,
``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``) when the
request asks for a stream, as one JSON message otherwise. A reply built with ``release=`` stops
after its first delta until the test sets that event, so a test can look at the store while
the turn is still running. ``count_tokens`` and any ``GET``/``HEAD`` probe get a harmless answer;
every request is recorded.

The server is also the proxy in ``client_env()`` (``HTTPS_PROXY``/``HTTP_PROXY``, loopback
exempt): a client that tries to reach any other host asks this server to ``CONNECT`` there, is
refused at once (no DNS lookup, no timeout) and lands in ``egress_attempts``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["FakeAnthropicAPI", "RecordedRequest", "Reply"]

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
THROWAWAY_API_KEY = "sk-ant-fake-key-for-tests"
HOLD_LIMIT_SECONDS = 30.0
"""A held stream gives up after this long, so a failed test cannot hang the run."""
SHUTDOWN_POLL_SECONDS = 0.02
"""How often the serving thread looks for a shutdown (the default half second adds up)."""


@dataclass(frozen=True)
class Reply:
    """One scripted model turn: content blocks, the stop reason, and an optional hold."""

    content: list[dict[str, Any]]
    stop_reason: str
    release: threading.Event | None = None

    @classmethod
    def text(cls, text: str, *, release: threading.Event | None = None) -> Reply:
        """The model answers with ``text`` and ends its turn."""
        return cls([{"type": "text", "text": text}], "end_turn", release)

    @classmethod
    def tool_use(cls, name: str, tool_input: dict[str, Any], *, tool_id: str) -> Reply:
        """The model calls tool ``name`` with ``tool_input`` (the CLI runs it and asks again)."""
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
        return cls([block], "tool_use")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake API received it (``body`` parsed when it was JSON)."""

    method: str
    path: str
    body: Any


@dataclass
class _State:
    """What the handler threads share with the test, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    script: list[Reply] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    egress: list[str] = field(default_factory=list)
    releases: list[threading.Event] = field(default_factory=list)
    message_ids: Iterator[int] = field(default_factory=itertools.count)


def _message(message_id: str, model: str, reply: Reply | None) -> dict[str, Any]:
    """The Messages API's message object; ``reply=None`` gives the empty one a stream opens."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content if reply else [],
        "stop_reason": reply.stop_reason if reply else None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5 if reply else 1},
    }


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """A content block as the stream carries it: an empty start, one delta, a stop."""
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        {"type": "content_block_delta", "index": index, "delta": delta},
        {"type": "content_block_stop", "index": index},
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean; the recorded requests say what happened."""

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        state = self.server.state
        with state.lock:
            state.requests.append(RecordedRequest(self.command, self.path, body))
        return body

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse_egress(self) -> bool:
        """Refuse a proxied request for another host (``CONNECT``, or an absolute URI)."""
        if self.command != "CONNECT" and self.path.startswith("/"):
            return False
        self._record()
        with self.server.state.lock:
            self.server.state.egress.append(f"{self.command} {self.path}")
        self.send_response(403, "no traffic leaves loopback in tests")
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        return True

    # -- methods -------------------------------------------------------------------------------

    def do_CONNECT(self) -> None:
        self._refuse_egress()

    def do_GET(self) -> None:
        if not self._refuse_egress():
            self._record()
            self._send_json(200, {})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if self._refuse_egress():
            return
        body = self._record()
        path = self.path.split("?", 1)[0]
        if path == COUNT_TOKENS_PATH:
            self._send_json(200, {"input_tokens": 10})
        elif path == MESSAGES_PATH and isinstance(body, dict):
            self._answer_messages(body)
        else:
            error = {"type": "not_found_error", "message": f"the fake API has no {path}"}
            self._send_json(404, {"type": "error", "error": error})

    def _answer_messages(self, body: dict[str, Any]) -> None:
        state = self.server.state
        with state.lock:
            reply = state.script.pop(0) if state.script else Reply.text("ok")
            message_id = f"msg_fake_{next(state.message_ids)}"
        model = str(body.get("model", "claude-fake"))
        if not body.get("stream"):
            self._send_json(200, _message(message_id, model, reply))
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        self._event({"type": "message_start", "message": _message(message_id, model, None)})
        for index, block in enumerate(reply.content):
            start, delta, stop = _block_events(index, block)
            self._event(start)
            self._event(delta)
            if index == 0 and reply.release is not None:
                reply.release.wait(HOLD_LIMIT_SECONDS)
            self._event(stop)
        delta_event = {"stop_reason": reply.stop_reason, "stop_sequence": None}
        self._event({"type": "message_delta", "delta": delta_event, "usage": {"output_tokens": 5}})
        self._event({"type": "message_stop"})

    def _event(self, event: dict[str, Any]) -> None:
        self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()


class FakeAnthropicAPI:
    """The fake API, serving from a background thread while the ``with`` block runs."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="fake-anthropic-api",
            daemon=True,
        )

    def __enter__(self) -> FakeAnthropicAPI:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._server.state.lock:
            for release in self._server.state.releases:
                release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, the value for ``ANTHROPIC_BASE_URL``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def client_env(self) -> dict[str, str]:
        """Environment that points a client here: base URL, a throwaway key, the egress trap."""
        return {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": THROWAWAY_API_KEY,
            "HTTPS_PROXY": self.base_url,
            "HTTP_PROXY": self.base_url,
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def script(self, *replies: Reply) -> None:
        """Queue the answers to the next ``POST /v1/messages`` requests, in order."""
        with self._server.state.lock:
            self._server.state.script.extend(replies)
            self._server.state.releases.extend(r.release for r in replies if r.release)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._server.state.lock:
            return list(self._server.state.requests)

    @property
    def message_requests(self) -> list[dict[str, Any]]:
        """The bodies of the ``POST /v1/messages`` requests, in arrival order."""
        return [
            r.body
            for r in self.requests
            if r.method == "POST" and r.path.split("?", 1)[0] == MESSAGES_PATH
        ]

    @property
    def egress_attempts(self) -> list[str]:
        """Requests the client tried to send past loopback (``CONNECT host:port``, ...)."""
        with self._server.state.lock:
            return list(self._server.state.egress)
