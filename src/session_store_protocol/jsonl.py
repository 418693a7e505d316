r"""Transcript lines written exactly as Claude Code writes them (JavaScript's ``JSON.stringify``).

Usage::

    from session_store_protocol.jsonl import json_line, json_line_utf8

    with path.open("w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json_line(entry) + "\n")
    with path.open("wb") as out:                  # the same file, one copy fewer per line
        for entry in entries:
            out.write(json_line_utf8(entry))
            out.write(b"\n")

A line read with ``json.loads`` and written back with ``json_line`` is byte-equal to what
Claude Code wrote: compact separators, non-ASCII characters kept as they are, the control
characters ``JSON.stringify`` escapes escaped the same way (``\n``, ``\u001b``), numbers in
JavaScript's form (``1e-7``, ``0.00001``, ``1e+21``, ``1`` for ``1.0``), and a lone UTF-16
surrogate (a split emoji, which real transcripts contain) as a lowercase ``\ud83d`` escape,
so the line stays valid UTF-8. Object keys come in JavaScript's order: keys that are array
indexes (``"0"``, ``"17"``) first, ascending, then the others in their order.

``NaN`` and infinities become ``null``, as ``JSON.stringify`` writes them (no store accepts
them; this only matters for data stored before they were refused).

An entry of tens of megabytes costs its line and a few copies of it, never an object per
character: a lone surrogate is escaped by the UTF-8 encoder's ``backslashreplace`` (which writes
exactly ``\ud83d``), not by a substitution that builds a string per match (a text of five
million lone surrogates took 400 MB that way).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

__all__ = ["json_line", "json_line_utf8"]

_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_NUMBERS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|NaN|-?Infinity)')
"""A string token (skipped whole, so digits inside text are never touched) or a number."""
_FLOAT_HINT = re.compile(r"[:,\[]-?(?:\d+(?:\.0|(?:\.\d+)?e[-+]?\d+)|NaN|Infinity)[,\]}]")
"""A number Python writes unlike JavaScript (``1.0``, ``1e-05``, ``NaN``) inside an object or
array, or text that looks like one: only then does the exact, slower pass over the line run.
(Each pattern here starts with a character class or a literal, which ``re`` scans for fast.)"""
_SURROGATE = re.compile("[\ud800-\udfff]")
_INDEX_KEY_HINT = re.compile(r'"(?:0|[1-9]\d{0,9})":')
_INDEX_KEY = re.compile(r"0|[1-9]\d{0,9}")
_MAX_INDEX = 2**32 - 2
"""The largest array index: JavaScript orders such keys first, ascending."""


def json_line(value: object) -> str:
    """Return ``value`` as one line of JSON, as ``JSON.stringify(value)`` writes it.

    Raises:
        TypeError: ``value`` holds something JSON cannot (bytes, sets...).
        RecursionError: ``value`` nests deeper than the interpreter's recursion limit.
    """
    text = _javascript_json(value)
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _utf8(text).decode("utf-8")


def json_line_utf8(value: object) -> bytes:
    """``json_line(value)`` encoded as UTF-8 (no newline), without an intermediate copy.

    Raises:
        TypeError: ``value`` holds something JSON cannot (bytes, sets...).
        RecursionError: ``value`` nests deeper than the interpreter's recursion limit.
    """
    return _utf8(_javascript_json(value))


def _javascript_json(value: object) -> str:
    """``JSON.stringify(value)``, but for lone surrogates, which are left as they are."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _INDEX_KEY_HINT.search(text):  # rare: only then walk the value to reorder keys
        text = json.dumps(_index_keys_first(value), ensure_ascii=False, separators=(",", ":"))
    if _FLOAT_HINT.search(text) or not isinstance(value, (dict, list)):
        text = _NUMBERS.sub(_javascript_number, text)
    return text


def _utf8(text: str) -> bytes:
    r"""``text`` in UTF-8, a surrogate pair as its character and a lone one as ``\ud83d``.

    Pairs (two code units in a Python string, as a decoded escape leaves them) are rare and
    joined by a substitution; every surrogate left is one UTF-8 cannot encode, which
    ``backslashreplace`` writes as JavaScript does, lowercase, inside the encoder.
    """
    if not text.isascii() and _SURROGATE_PAIR.search(text):
        text = _SURROGATE_PAIR.sub(_joined_pair, text)
    return text.encode("utf-8", "backslashreplace")


def _is_index(key: object) -> bool:
    return isinstance(key, str) and _INDEX_KEY.fullmatch(key) is not None and int(key) <= _MAX_INDEX


def _index_keys_first(value: object) -> object:
    """A copy of ``value`` whose objects list array-index keys first, as JavaScript does."""
    top: list[object] = [None]
    stack: list[tuple[object, Any, Any]] = [(value, top, 0)]
    while stack:
        source, target, slot = stack.pop()
        copied: object = source
        if isinstance(source, dict):
            indexes = sorted((k for k in source if _is_index(k)), key=int)
            ordered = indexes + [k for k in source if not _is_index(k)]
            copied = dict.fromkeys(ordered)
            stack.extend((source[k], copied, k) for k in ordered)
        elif isinstance(source, list):
            copied = [None] * len(source)
            stack.extend((item, copied, i) for i, item in enumerate(source))
        target[slot] = copied
    return top[0]


def _joined_pair(match: re.Match[str]) -> str:
    """A high and a low surrogate: one character, as JavaScript sees it."""
    return match.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _javascript_number(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None or not any(c in number for c in ".eNI"):
        return match.group()  # a string, or an integer: Python and JavaScript agree
    if number in ("NaN", "Infinity", "-Infinity"):
        return "null"
    return _number_to_string(float(number))


def _number_to_string(value: float) -> str:
    """ECMAScript's Number::toString for a finite float (shortest round-trip digits)."""
    if value == 0:
        return "0"  # JSON.stringify(-0) is "0"
    sign = "-" if value < 0 else ""
    # repr is the shortest string that round-trips, the same digits JavaScript picks.
    exact = Decimal(repr(abs(value))).normalize()
    digits = "".join(map(str, exact.as_tuple().digits))
    k = len(digits)
    n = int(exact.as_tuple().exponent) + k  # value = 0.digits x 10**n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        exponent = f"e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
        body = digits[0] + (f".{digits[1:]}" if k > 1 else "") + exponent
    return sign + body
