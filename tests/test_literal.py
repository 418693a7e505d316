"""``literal_json``: JSON for a terminal, every unsafe character escaped, in bounded memory."""

from __future__ import annotations

import json
import tracemalloc

from session_store_mongo.cli.literal import literal_json


def test_every_unsafe_character_is_escaped_and_the_value_kept() -> None:
    r"""DEL, C1, bidirectional controls and lone surrogates become \u escapes; text stays."""
    value = {"k\udc00": "del\x7f c1\x85 \u202egnp \u2069 é \U0001f600 \ud83d end"}
    text = literal_json(value)
    assert text == (
        '{"k\\udc00": "del\\u007f c1\\u0085 \\u202egnp \\u2069 é \U0001f600 \\ud83d end"}'
    )
    assert json.loads(text) == value


def test_millions_of_lone_surrogates_cost_copies_not_objects() -> None:
    """A text of lone surrogates is escaped in a few copies of its line, not 60 bytes a char."""
    value = {"t": "\ud83d" * 500_000 + "\x85"}
    tracemalloc.start()
    try:
        text = literal_json(value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == '{"t": "' + "\\ud83d" * 500_000 + '\\u0085"}'
    # The result is 3 MB; a substitution per character peaked above 30 MB.
    assert peak < 5 * len(text)
