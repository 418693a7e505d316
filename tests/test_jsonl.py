"""``json_line`` writes what JavaScript's ``JSON.stringify`` writes, byte for byte."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from session_store_protocol.jsonl import json_line, json_line_utf8

# Each expected line is what Node.js 20 printed for JSON.stringify(JSON.parse(line)).
STRINGIFIED: list[tuple[Any, str]] = [
    (
        {
            "type": "user",
            "message": {"role": "user", "content": "h\xe9llo \u65e5\u672c\u8a9e \U0001f680"},
        },
        '{"type":"user","message":{"role":"user",'
        '"content":"h\xe9llo \u65e5\u672c\u8a9e \U0001f680"}}',
    ),
    (
        {"text": "a split emoji \ud83d", "low": "\ude00", "reversed": "\ude00\ud83d"},
        '{"text":"a split emoji \\ud83d","low":"\\ude00","reversed":"\\ude00\\ud83d"}',
    ),
    (
        {"ctl": "\x00\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f", "quote": '"\\/', "sep": "\u2028\u2029"},
        '{"ctl":"\\u0000\\u0007\\b\\t\\n\\u000b\\f\\r\\u001b\\u001f\x7f","quote":"\\"\\\\/",'
        '"sep":"\u2028\u2029"}',
    ),
    (
        {"b": 1, "10": 2, "a": 3, "2": 4, "-1": 5, "01": 6, "4294967294": 7, "4294967295": 8},
        '{"2":4,"10":2,"4294967294":7,"b":1,"a":3,"-1":5,"01":6,"4294967295":8}',
    ),
    (
        [1.0, -0.0, 0.1, 1e-07, 1.5e-06, 1e-06, 1e-05, 123.456, 1e16, 1.5e17, 1e20, 1e21],
        "[1,0,0.1,1e-7,0.0000015,0.000001,0.00001,123.456,10000000000000000,"
        "150000000000000000,100000000000000000000,1e+21]",
    ),
    (
        [2.5e-300, 5e-324, 1.7976931348623157e308, -1.5e-7, {"v": "1.0e-05 stays text"}],
        '[2.5e-300,5e-324,1.7976931348623157e+308,-1.5e-7,{"v":"1.0e-05 stays text"}]',
    ),
    (
        {"nested": [{"x": [1, {"y": None, "z": True, "w": False}]}], "n": -12345678901234567000},
        '{"nested":[{"x":[1,{"y":null,"z":true,"w":false}]}],"n":-12345678901234567000}',
    ),
]


@pytest.mark.parametrize(("value", "expected"), STRINGIFIED)
def test_writes_what_json_stringify_writes(value: Any, expected: str) -> None:
    """Separators, escapes, surrogates, number forms and key order match JSON.stringify."""
    assert json_line(value) == expected


def test_lone_surrogates_leave_valid_utf8() -> None:
    """A lone surrogate becomes an escape (valid UTF-8); a pair of code points one character."""
    line = json_line({"t": "\ud83d", "pair": "\ud83d\ude00"})
    assert line.encode("utf-8") == b'{"t":"\\ud83d","pair":"\xf0\x9f\x98\x80"}'
    assert json.loads(line)["t"] == "\ud83d"


@pytest.mark.parametrize(("value", "expected"), STRINGIFIED)
def test_utf8_line_is_the_line_encoded(value: Any, expected: str) -> None:
    """json_line_utf8 gives json_line's line as UTF-8 bytes, byte for byte."""
    assert json_line_utf8(value) == expected.encode("utf-8")


def test_mixed_surrogates_escape_alike_in_both_forms() -> None:
    """Lone surrogates among pairs, text and a reversed pair: both forms agree with JavaScript."""
    value = {"t": "a\ude00\ud83d\ude00b\ud83d\ud83d", "k\udc00": ["\udbff\udfff"]}
    expected = '{"t":"a\\ude00\U0001f600b\\ud83d\\ud83d","k\\udc00":["\U0010ffff"]}'
    assert json_line(value) == expected
    assert json_line_utf8(value) == expected.encode("utf-8")


def test_a_text_of_lone_surrogates_costs_no_object_per_character() -> None:
    """Five hundred thousand lone surrogates cost a few copies of the line, not 60 bytes each."""
    text = "\ud83d" * 500_000
    tracemalloc.start()
    try:
        line = json_line_utf8({"t": text})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert line == b'{"t":"' + b"\\ud83d" * 500_000 + b'"}'
    # The line is 3 MB; a substitution per character peaked near 40 MB.
    assert peak < 4 * len(line)


def test_non_finite_numbers_become_null() -> None:
    """NaN and infinities are written as null, as JSON.stringify writes them."""
    assert json_line([float("nan"), float("inf"), float("-inf"), "NaN"]) == '[null,null,null,"NaN"]'
