"""``json_line`` writes what JavaScript's ``JSON.stringify`` writes, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

from session_store_protocol.jsonl import json_line

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


def test_non_finite_numbers_become_null() -> None:
    """NaN and infinities are written as null, as JSON.stringify writes them."""
    assert json_line([float("nan"), float("inf"), float("-inf"), "NaN"]) == '[null,null,null,"NaN"]'
