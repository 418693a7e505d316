"""``show``'s rendering of odd shapes: compact JSON, shown literally, never a Python type name.

A transcript is untrusted input: a message without content, content that is a number, a list
of lists... is printed as the renderer prints any shape it does not know, as JSON.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from session_store_mongo.cli.literal import visible
from session_store_mongo.cli.render import (
    BODY_CHARS,
    PAGE_CHARS,
    PAGE_ROWS,
    TranscriptPages,
    _shorten,
    transcript_grid,
)


def shown(entry: dict[str, Any], width: int = 300) -> str:
    """What ``show`` prints for one entry, in a terminal wide enough for no wrapping."""
    console = Console(width=width, record=True, file=io.StringIO())
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


# -- long entries: cut, counted, and paged by size ---------------------------------------------


def long_shown(entry: dict[str, Any]) -> str:
    """What ``show`` prints for an entry of ``BODY_CHARS`` characters or more, unwrapped."""
    return shown(entry, width=8 * BODY_CHARS)


def test_a_long_text_is_cut_with_how_much_was_left_out() -> None:
    """A text past ``BODY_CHARS`` shows its start, then a line counting the rest and --json."""
    lines = long_shown(user("ab" * BODY_CHARS)).splitlines()  # twice the limit
    assert [line.strip() for line in lines] == [
        "user       " + "ab" * (BODY_CHARS // 2),
        f"… {BODY_CHARS:,} more characters not shown: show --json prints this entry whole",
    ]


def test_a_text_of_the_limit_is_whole_and_one_more_is_cut() -> None:
    """At ``BODY_CHARS`` nothing is cut and no line says so; one character more is cut."""
    whole = long_shown(user("a" * BODY_CHARS))
    assert whole.count("a") == BODY_CHARS
    assert "not shown" not in whole
    first, marker = long_shown(user("a" * (BODY_CHARS + 1))).splitlines()
    assert first.strip() == "user       " + "a" * BODY_CHARS
    assert marker.strip().startswith("… 1 more character not shown")


def test_the_count_spans_every_block_of_the_message() -> None:
    """Blocks after the cut count too: what is left out is all of the message's rest."""
    blocks = [{"type": "text", "text": "a" * BODY_CHARS}, {"type": "text", "text": "b" * 99}]
    text = long_shown(user(blocks))
    assert "b" not in text.replace("show --json prints this entry whole", "")
    assert "… 100 more characters not shown" in text  # the newline between them, and 99 b


@pytest.mark.parametrize(
    "unsafe",
    ["\x1b", "\u202e", "\ud83d", "\r", "\x9b", "\n"],
    ids=["esc", "rlo", "surrogate", "cr", "csi", "newline"],
)
def test_the_cut_never_splits_an_escape(unsafe: str) -> None:
    """An unsafe character at the cut shows whole, as its escape, or not at all: never half."""
    for before in (BODY_CHARS - 2, BODY_CHARS - 1, BODY_CHARS):
        text = long_shown(user([{"type": "text", "text": "x" * before + unsafe * 50}]))
        *body, marker = [line.rstrip() for line in text.splitlines()]
        kept = BODY_CHARS - before
        if unsafe == "\n":  # kept as line breaks: each is a line of the cell
            assert body == ["user       " + "x" * before] + [""] * kept
        else:
            assert unsafe not in text
            assert body == ["user       " + "x" * before + visible(unsafe) * kept]
        assert marker.strip().startswith(f"… {50 - kept} more characters not shown")


def test_markup_at_the_cut_is_printed_not_parsed() -> None:
    """Half a markup tag left by the cut is text: no markup error, no style applied."""
    text = long_shown(user("x" * (BODY_CHARS - 3) + "[bold]B[/bold]" * 10))
    assert "x[bo\n" in text


def test_pages_are_bounded_by_rows_and_by_characters() -> None:
    """Small entries fill pages of ``PAGE_ROWS``; long ones end a page at ``PAGE_CHARS``."""
    pages = TranscriptPages()
    long_entries = 100
    entries = [user("short")] * PAGE_ROWS + [user("y" * 3 * BODY_CHARS)] * long_entries
    sizes = [page.row_count for entry in entries if (page := pages.add(entry)) is not None]
    pages.add(user("last"))
    rest = pages.rest()
    assert rest is not None
    sizes.append(rest.row_count)
    assert pages.rest() is None  # nothing added since
    assert sum(sizes) == len(entries) + 1
    assert sizes[0] == PAGE_ROWS
    per_page = PAGE_CHARS // BODY_CHARS  # a long row is BODY_CHARS and its marker line
    assert all(per_page // 2 <= size <= per_page for size in sizes[1:-1])
    assert len(sizes) >= 1 + long_entries // per_page


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(" \t\n\x1c\u3000\u2028ab…é"), max_size=300),
    st.integers(1, 250),
)
def test_shorten_is_the_text_on_one_line_cut_with_an_ellipsis(text: str, limit: int) -> None:
    """``_shorten`` reads only the words it keeps, and gives what the whole text would."""
    flat = " ".join(text.split())
    expected = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    assert _shorten(text, limit) == expected
