r"""Text from a transcript or from the user, made safe to print: shown, never interpreted.

Usage::

    from session_store_mongo.cli.literal import literal, literal_json, visible

    console.print(literal(title))                 # a Rich Text: no markup, escapes shown
    typer.echo(literal_json(entry))               # JSON whose dangerous characters are escaped
    f"{visible(path)}:{line}: bad JSON"           # plain text for a message

A transcript is untrusted input, and so are file names and arguments: ``[link=...]`` must not
become a link (Rich markup), and ``ESC [ 2 J``, an OSC 8 hyperlink, ``BEL``, ``\r`` or a
right-to-left override must not reach the terminal as such. ``visible`` replaces every C0 and C1
control character, ``DEL``, the bidirectional controls, the line and paragraph separators and
lone surrogates (which no terminal encoding can print) by an escape that shows the code point
(``\x1b``, ``\u202e``); ``literal`` does the same in a Rich ``Text`` (never parsed as markup)
with the escapes dimmed, so they stand apart from text that happens to contain a backslash.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text

__all__ = ["literal", "literal_json", "visible"]

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""Control characters (C0, DEL, C1), bidirectional controls, line and paragraph separators,
and lone surrogates."""
_UNSAFE_BUT_LINE_BREAKS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)
"""The same, minus ``\t`` and ``\n``: a transcript's multi-line text keeps its layout."""
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""What ``json.dumps`` leaves unescaped inside strings (it escapes C0 controls itself)."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_IN_JSON_ESCAPES = {
    code: f"\\u{code:04x}" for code in range(0xD800) if _UNSAFE_IN_JSON.match(chr(code))
}
"""``_UNSAFE_IN_JSON`` but surrogates, as ``str.translate`` takes them: one pass, no object
per character, for a text holding millions of them."""
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPE_STYLE = "dim reverse"


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _unsafe(multiline: bool) -> re.Pattern[str]:
    return _UNSAFE_BUT_LINE_BREAKS if multiline else _UNSAFE


def visible(text: str, *, multiline: bool = False) -> str:
    r"""``text`` with every unsafe character replaced by an escape such as ``\x1b``.

    Args:
        text: Any text.
        multiline: Keep ``\n`` and ``\t`` (a transcript's message); otherwise they are
            escaped too, so the result stays on one line.
    """
    return _unsafe(multiline).sub(lambda match: _escape(match.group()), text)


def literal(text: str, *, multiline: bool = False, style: str = "") -> Text:
    r"""``text`` as a Rich ``Text`` that prints as it is: no markup, unsafe characters escaped.

    Args:
        text: Any text.
        multiline: Keep ``\n`` and ``\t``, as in ``visible``.
        style: The Rich style of the whole text.
    """
    result = Text(style=style)
    position = 0
    for match in _unsafe(multiline).finditer(text):
        result.append(text[position : match.start()])
        result.append(_escape(match.group()), style=_ESCAPE_STYLE)
        position = match.end()
    result.append(text[position:])
    return result


def literal_json(value: Any, *, indent: int | None = None) -> str:
    r"""``value`` as JSON for a terminal: equal once parsed, with unsafe characters escaped.

    ``json.dumps`` escapes C0 controls itself; the other unsafe characters can only sit inside
    strings (outside them JSON is ASCII), where a ``\uXXXX`` escape keeps the value unchanged.
    Surrogates are escaped by the UTF-8 encoder's ``backslashreplace`` (``\ud83d``, as
    ``\uXXXX`` reads), the rest by ``str.translate``: an entry of millions of them costs a few
    copies of its text, not an object per character.
    """
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    if not _UNSAFE_IN_JSON.search(text):
        return text
    if _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if not _UNSAFE_IN_JSON.search(text):
            return text
    return text.translate(_UNSAFE_IN_JSON_ESCAPES)
