"""``show``'s rendering of odd shapes: compact JSON, shown literally, never a Python type name.

A transcript is untrusted input: a message without content, content that is a number, a list
of lists... is printed as the renderer prints any shape it does not know, as JSON.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from session_store_mongo.cli.render import transcript_grid


def shown(entry: dict[str, Any]) -> str:
    """What ``show`` prints for one entry, in a terminal wide enough for no wrapping."""
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(transcript_grid([entry]))
    return console.export_text()


def user(content: Any = None, **message: Any) -> dict[str, Any]:
    """A user entry whose message holds ``content`` (left out when ``None``) and ``message``."""
    if content is not None:
        message["content"] = content
    return {"type": "user", "uuid": "u1", "message": message}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            user(**{"$where": "1", "x.y": 2}),
            'user       {"message": {"$where": "1", "x.y": 2}}',
            id="message-without-content",
        ),
        pytest.param(
            {"type": "user", "message": {"role": "user", "content": None}},
            'user       {"message": {"role": "user", "content": null}}',
            id="content-null",
        ),
        pytest.param(
            user(5, role="user"),
            'user       {"message": {"role": "user", "content": 5}}',
            id="content-a-number",
        ),
        pytest.param(
            user(True), 'user       {"message": {"content": true}}', id="content-a-boolean"
        ),
        pytest.param(
            user([1, "two", None, 2.5]),
            'user       1\n           "two"\n           null\n           2.5',
            id="list-of-non-objects",
        ),
        pytest.param(
            user([{"a": 1}, {"type": 7}, {"type": None}]),
            'user       {"a": 1}\n           {"type": 7}\n           {"type": null}',
            id="objects-without-a-string-type",
        ),
        pytest.param(
            user({"a": [1]}), 'user       {"a": [1]}', id="content-an-object-without-type"
        ),
        pytest.param(
            user([[{"type": "text", "text": "hi"}], []]),
            'user       [{"type": "text", "text": "hi"}]\n           []',
            id="nested-lists",
        ),
        pytest.param(
            user([{"type": "text", "text": {"a": 1}}, {"type": "text"}]),
            'user       {"type": "text", "text": {"a": 1}}\n           {"type": "text"}',
            id="text-not-a-string",
        ),
        pytest.param(
            user([{"type": "tool_use", "name": ["x"]}, {"type": "thinking", "thinking": 3}]),
            'user       {"type": "tool_use", "name": ["x"]}\n'
            '           {"type": "thinking", "thinking": 3}',
            id="tool-call-and-thinking-of-wrong-types",
        ),
        pytest.param(
            user(
                [
                    {
                        "type": "tool_result",
                        "content": [
                            1,
                            {"b": None},
                            {"type": "image"},
                            "t",
                            {"type": "text", "text": 5},
                        ],
                    }
                ]
            ),
            'user       ← 1 {"b": null} [image] "t" {"type": "text", "text": 5}',
            id="tool-result-of-odd-parts",
        ),
        pytest.param(
            user([{"type": "tool_result", "content": None}, {"type": "tool_result"}]),
            "user       ← null\n           ← null",
            id="tool-result-without-content",
        ),
        pytest.param(user("hi", role=None), "null       hi", id="role-not-a-string"),
    ],
)
def test_odd_shapes_print_as_compact_json(entry: dict[str, Any], expected: str) -> None:
    """Each odd shape prints as its JSON (role, then body), never as a type name or repr."""
    assert [line.rstrip() for line in shown(entry).splitlines()] == expected.splitlines()


def test_known_shapes_still_print_as_text_calls_and_results() -> None:
    """Text, tool calls, tool results, thinking and an image keep their readable forms."""
    text = shown(
        user(
            [
                {"type": "text", "text": "hello"},
                {"type": "tool_use", "name": "Read", "input": {"path": "a.py"}},
                {"type": "tool_result", "content": [{"type": "text", "text": "done"}]},
                {"type": "thinking", "thinking": "hmm"},
                {"type": "image", "source": {}},
            ]
        )
    )
    assert [line.strip() for line in text.splitlines()] == [
        "user       hello",
        "→ Read(path=a.py)",
        "← done",
        "(thinking) hmm",
        "[image]",
    ]


def test_odd_shapes_escape_control_characters() -> None:
    """JSON of an odd shape goes through ``literal``: a bidi override prints as an escape."""
    text = shown(user([{"note": "\u202eevil\x1b[2J"}]))
    assert "\u202e" not in text
    assert "\x1b" not in text
    assert '{"note": "\\u202eevil\\u001b[2J"}' in text
