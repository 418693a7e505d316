"""The fake Anthropic Messages API that the real-client tier points Claude Code at.

Driven here with the standard library's HTTP client, no CLI: what it streams, what it records,
how it holds a stream, and that it answers side calls harmlessly and refuses egress at once.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fake_anthropic_api import FakeAnthropicAPI, Reply


@pytest.fixture
def api() -> Iterator[FakeAnthropicAPI]:
    with FakeAnthropicAPI() as fake:
        yield fake


def connect(api: FakeAnthropicAPI) -> http.client.HTTPConnection:
    address = urlsplit(api.base_url)
    assert address.hostname
    assert address.port
    return http.client.HTTPConnection(address.hostname, address.port, timeout=10)


def post(api: FakeAnthropicAPI, path: str, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection = connect(api)
    connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    return connection.getresponse()


def events(response: http.client.HTTPResponse) -> list[dict[str, Any]]:
    """The server-sent events of a streamed answer, each checked against its ``event:`` name."""
    parsed = []
    for chunk in response.read().decode().split("\n\n"):
        if chunk:
            name, data = chunk.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert name == f"event: {event['type']}"
            parsed.append(event)
    return parsed


def test_a_streamed_text_reply_is_the_messages_api_event_sequence(api: FakeAnthropicAPI) -> None:
    """A streamed request gets the six event types in order, carrying the scripted text."""
    api.script(Reply.text("hello"))
    response = post(api, "/v1/messages?beta=true", {"model": "m", "stream": True, "messages": []})
    assert response.status == 200
    assert response.getheader("content-type") == "text/event-stream"
    streamed = events(response)
    assert [e["type"] for e in streamed] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert streamed[2]["delta"] == {"type": "text_delta", "text": "hello"}
    assert streamed[4]["delta"]["stop_reason"] == "end_turn"


def test_a_tool_use_streams_its_input_as_json_and_scripts_run_in_order(
    api: FakeAnthropicAPI,
) -> None:
    """Scripted replies are used in order; a tool call's input arrives as a JSON delta."""
    api.script(Reply.tool_use("Agent", {"prompt": "go"}, tool_id="toolu_1"), Reply.text("two"))
    first = events(post(api, "/v1/messages", {"stream": True}))
    assert first[1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Agent",
        "input": {},
    }
    assert json.loads(first[2]["delta"]["partial_json"]) == {"prompt": "go"}
    assert first[4]["delta"]["stop_reason"] == "tool_use"
    assert events(post(api, "/v1/messages", {"stream": True}))[2]["delta"]["text"] == "two"
    assert events(post(api, "/v1/messages", {"stream": True}))[2]["delta"]["text"] == "ok"


def test_every_request_is_recorded_and_side_calls_are_answered(api: FakeAnthropicAPI) -> None:
    """Bodies are recorded in order; count_tokens, GET, HEAD and unknown paths answer at once."""
    message = post(api, "/v1/messages", {"model": "m", "messages": [{"role": "user"}]})
    assert json.loads(message.read())["content"] == [{"type": "text", "text": "ok"}]
    tokens = post(api, "/v1/messages/count_tokens", {"messages": []})
    assert json.loads(tokens.read()) == {"input_tokens": 10}
    unknown = post(api, "/v1/files", {})
    assert unknown.status == 404
    assert json.loads(unknown.read())["type"] == "error"
    for method in ("GET", "HEAD"):
        connection = connect(api)
        connection.request(method, "/")
        assert connection.getresponse().status == 200

    assert [(r.method, r.path) for r in api.requests] == [
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/files"),
        ("GET", "/"),
        ("HEAD", "/"),
    ]
    assert api.message_requests == [{"model": "m", "messages": [{"role": "user"}]}]
    assert api.egress_attempts == []


def test_a_held_reply_stops_after_its_first_delta_until_released(api: FakeAnthropicAPI) -> None:
    """The stream pauses mid-answer until the test sets the release event."""
    release = threading.Event()
    api.script(Reply.text("slow", release=release))
    response = post(api, "/v1/messages", {"stream": True})
    seen = b""
    while b"content_block_delta" not in seen:
        seen += response.read1()
    assert b"message_stop" not in seen
    release.set()
    assert b"message_stop" in seen + response.read()


def test_egress_through_the_proxy_is_refused_and_recorded(api: FakeAnthropicAPI) -> None:
    """A CONNECT to another host, or an absolute-URI request, is refused with 403 and recorded."""
    tunnel = connect(api)
    tunnel.set_tunnel("api.anthropic.com", 443)
    with pytest.raises(OSError, match="403"):
        tunnel.request("GET", "/")
    proxied = connect(api)
    proxied.request("GET", "http://example.com/")
    assert proxied.getresponse().status == 403
    assert api.egress_attempts == ["CONNECT api.anthropic.com:443", "GET http://example.com/"]
    assert api.message_requests == []
