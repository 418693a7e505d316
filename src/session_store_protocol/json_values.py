"""What an entry may hold: JSON values, checked and copied in one walk that never recurses.

Usage::

    from session_store_protocol.json_values import MAX_DEPTH, JsonCopier

    plain = JsonCopier().copy(entry, "entry 3 (uuid 'a1')")   # raises InvalidEntryError

    class Escaping(JsonCopier):          # a store that must change how text is kept
        def text(self, value: str) -> object:
            return value.replace("%", "%25")

An entry holds objects with string keys, arrays, strings, booleans, ``null``, integers of any
size and finite floats. Everything else is refused with ``InvalidEntryError`` naming the entry
and the path to the value: ``NaN`` and infinities (strict JSON has no literal for them), bytes,
sets, tuples (they would come back as lists, not deep-equal), non-string keys, and nesting
deeper than ``MAX_DEPTH`` levels.

``MAX_DEPTH`` is 98, counting the entry object itself as level 1: MongoDB stores documents
nested at most 100 levels deep, a stored entry sits one level inside its document, and one
level stays in reserve for a value the Mongo store has to escape into a small object. Every
store applies the same limit, so an entry one store accepts is accepted by all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidEntryError

__all__ = ["MAX_DEPTH", "JsonCopier"]

MAX_DEPTH = 98
"""The deepest nesting of objects and arrays an entry may have (the entry itself is level 1)."""

_PATH_SHOWN = 200
"""How many characters of a path an error shows (a hostile path can be very long)."""


class JsonCopier:
    """Copies a JSON value into plain ``dict``/``list``/scalars, refusing what JSON cannot hold.

    The walk keeps its own stack, so no input, however deep, can exhaust the interpreter's.
    Subclasses override ``key``, ``text`` and ``integer`` to change how those are stored; the
    checks stay the same for every store.
    """

    def key(self, key: str) -> str:
        """Return the key to store for an object key (already known to be a string)."""
        return key

    def text(self, value: str) -> Any:
        """Return what to store for a string value."""
        return value

    def integer(self, value: int) -> Any:
        """Return what to store for an integer (never a ``bool``)."""
        return value

    def copy(self, value: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Return a checked copy of the JSON object ``value``.

        Args:
            value: The entry (or another JSON object) to copy.
            where: How errors name it, e.g. ``"entry 3 (uuid 'a1')"``.

        Raises:
            InvalidEntryError: A value JSON cannot hold, or nesting deeper than ``MAX_DEPTH``;
                the message names ``where`` and the path to the value.
        """
        top: dict[str, Any] = {}
        # Each frame: the source container, its copy, its depth and its path (for errors).
        stack: list[tuple[Any, Any, int, tuple[object, ...]]] = [(value, top, 1, ())]
        while stack:
            source, target, depth, path = stack.pop()
            is_object = isinstance(source, dict)
            name: Any
            for name, item in source.items() if is_object else enumerate(source):
                if is_object and type(name) is not str:
                    if not isinstance(name, str):
                        raise _refuse(where, path, f"object key {name!r} is not a string")
                    name = str(name)
                kind = type(item)
                if kind is str:
                    stored = self.text(item)
                elif kind is dict or kind is list or isinstance(item, (dict, list)):
                    if depth >= MAX_DEPTH:
                        raise _refuse(
                            where, (*path, name), f"nested deeper than {MAX_DEPTH} levels"
                        )
                    stored = {} if isinstance(item, dict) else []
                    stack.append((item, stored, depth + 1, (*path, name)))
                else:
                    stored = self._scalar(item, where, (*path, name))
                if is_object:
                    target[self.key(name)] = stored
                else:
                    target.append(stored)
        return top

    def _scalar(self, item: Any, where: str, path: tuple[object, ...]) -> Any:
        if item is None or item is True or item is False:
            return item
        if isinstance(item, bool):  # a bool subclass would be odd, but it is still a bool
            return bool(item)
        if isinstance(item, int):
            return self.integer(int(item))
        if isinstance(item, float):
            if not math.isfinite(item):
                raise _refuse(where, path, f"{item!r} is not a JSON number")
            return float(item)
        if isinstance(item, str):  # a str subclass: keep the text, not the class
            return self.text(str(item))
        hint = " (use a list)" if isinstance(item, tuple) else ""
        raise _refuse(where, path, f"{type(item).__name__} is not a JSON value{hint}")


def _refuse(where: str, path: tuple[object, ...], problem: str) -> InvalidEntryError:
    shown = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
    if len(shown) > _PATH_SHOWN:
        shown = shown[:_PATH_SHOWN] + "…"
    return InvalidEntryError(f"{where}{shown}: {problem}")
