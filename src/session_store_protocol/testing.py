"""A contract kit every ``SessionStore`` must pass, stricter than the SDK's conformance suite.

Usage, in a store author's test module::

    import pytest
    from session_store_protocol.testing import CONTRACT_CHECKS, run_contract

    @pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
    async def test_contract(check):
        await check(make_my_store)          # one test per contract

    async def test_whole_contract():
        await run_contract(make_my_store)   # or all of it at once

``make_store`` is called once per check (sync or async) and must return a fresh, empty store.
Every check fails with ``ContractViolation`` (an ``AssertionError`` raised explicitly, so the
kit keeps working under ``python -O``). Checks of summaries need claude-agent-sdk: without it
they raise ``ContractSkipped`` (a ``unittest.SkipTest``, which pytest and unittest report as
skipped, never as passed), and ``run_contract`` returns their names.

Awkward input gets the same answer from every store, and the kit proves it: lone UTF-16
surrogates in values and keys round-trip (in session keys they are refused), ``NaN`` and
infinities are refused naming the entry and the path, nesting is limited to
``json_values.MAX_DEPTH`` levels exactly, an empty ``uuid`` is no uuid, and keys shaped like
query operators, dotted keys and integers beyond 64 bits round-trip. ``AWKWARD_BATCHES`` are
also appended to the in-memory reference store: the store under test must accept and refuse
exactly the same batches.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import unittest
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import InvalidEntryError, InvalidKeyError
from .json_values import MAX_DEPTH
from .memory import InMemorySessionStore
from .summaries import load_fold, summaries_available
from .types import SessionKey, SessionStore, SessionStoreEntry

__all__ = [
    "AWKWARD_BATCHES",
    "CONTRACT_CHECKS",
    "INVALID_KEYS",
    "ODD_UUIDS",
    "TRICKY_ENTRIES",
    "Check",
    "ContractSkipped",
    "ContractViolation",
    "StoreFactory",
    "nested_entry",
    "run_contract",
]

StoreFactory = Callable[[], "SessionStore | Awaitable[SessionStore]"]
Check = Callable[[StoreFactory], Awaitable[None]]

CONTRACT_CHECKS: list[Check] = []

KEY: SessionKey = {"project_key": "proj", "session_id": "sess"}
SUB: SessionKey = {"project_key": "proj", "session_id": "sess", "subpath": "subagents/agent-1"}

INVALID_KEYS: list[Any] = [
    {"project_key": "", "session_id": "s"},
    {"project_key": "p", "session_id": ""},
    {"project_key": "p", "session_id": {"$ne": ""}},
    {"project_key": {"$gt": ""}, "session_id": "s"},
    {"project_key": "p", "session_id": ["s"]},
    {"project_key": "p", "session_id": 7},
    {"project_key": "p", "session_id": None},
    {"project_key": "p"},
    {"project_key": "p", "session_id": "s", "subpath": ""},
    {"project_key": "p", "session_id": "s", "subpath": "/etc/passwd"},
    {"project_key": "p", "session_id": "s", "subpath": "subagents/../../x"},
    {"project_key": "p", "session_id": "s", "subpath": {"$exists": True}},
    {"project_key": "p", "session_id": "s", "subpath": 3},
    {"project_key": "p", "session_id": "s\x00"},
    {"project_key": "p", "session_id": "split \ud83d"},
    {"project_key": "p\udc00", "session_id": "s"},
    {"project_key": "p", "session_id": "s", "subpath": "subagents/agent-\ud800"},
    "proj/sess",
    None,
]
"""Keys every store must refuse with ``InvalidKeyError`` before reading or writing anything."""

TRICKY_ENTRIES: list[dict[str, Any]] = [
    {"type": "user", "uuid": "t-unicode", "text": "héllo wörld ✓ 日本語 🚀", "empty": ""},
    {
        "type": "assistant",
        "uuid": "t-nested",
        "message": {"content": [{"a": [1, [2, {"b": None}]]}]},
    },
    {"type": "x", "uuid": "t-dollar", "$set": {"$where": 1}, "a.b": {"c.d": "e"}, "": "empty key"},
    {"type": "x", "uuid": "t-nul", "nul\x00key": "nul\x00value"},
    {
        "type": "x",
        "uuid": "t-ints",
        "big": 2**63 - 1,
        "small": -(2**63),
        "huge": 2**64,
        "vast": -(10**30),
    },
    {"type": "x", "uuid": "t-scalars", "f": 1.5, "neg": -0.25, "t": True, "f2": False, "n": None},
    {"type": "x", "uuid": "t-empty", "list": [], "obj": {}, "str": ""},
    {"type": "x", "uuid": "t-id", "_id": "not-an-object-id", "seq": -1, "entry": "shadowing"},
    {
        "type": "x",
        "uuid": "t-operators",
        "query": {"$gt": "", "$where": "sleep(1000)", "$ne": None},
        "dotted": {"a.b.c": 1, ".": 2, "..": 3, "$": 4, "$$ROOT": 5},
        "__proto__": {"constructor": {"prototype": 1}},
    },
    {
        "type": "x",
        "uuid": "t-markers",
        "int": {"%int": "5"},
        "str": {"%str": "x"},
        "%ud83d": "%ud83d",
        "%25": "%2E%00%24",
        "%u": ["%", "%u12", "%uzzzz"],
    },
    {
        "type": "x",
        "uuid": "t-surrogates \ud83d",
        "high": "split \ud83d",
        "low": "\ude00 tail",
        "reversed": "\ude00\ud83d",
        "pair": "\ud83d\ude00",
        "joined": "\U0001f600",
        "key \udfff.$": ["\ud800", {"\udbff": "\udc00%"}],
    },
    {"type": "x", "uuid": "t-floats", "tiny": 5e-324, "max": 1.7976931348623157e308, "z": -0.0},
    {"type": "x"},
]
"""Entries that must come back deep-equal: odd keys, big integers, nesting, unicode, lone
UTF-16 surrogates (a split emoji, which real transcripts contain), operator-shaped keys and
keys shaped like a store's own escape markers."""


ODD_UUIDS = ["a\x00b", "$gt", "a.b", " ", "%int", "u" * 10_000]
"""Unusual but valid uuids: each still deduplicates (a batch of two stores one)."""


def nested_entry(depth: int, leaf: Any = 1, *, arrays: bool = False, **extra: Any) -> Any:
    """An entry whose deepest object or array is at level ``depth`` (the entry is level 1).

    Built without recursion, so any depth can be asked for.
    """
    value = leaf
    for _ in range(depth - 1):
        value = [value] if arrays else {"d": value}
    return {"type": "x", **extra, "deep": value}


AWKWARD_BATCHES: list[Any] = [
    [{"type": "x", "n": float("nan")}],
    [{"type": "x", "uuid": "a"}, {"type": "x", "cost": {"usd": float("inf")}}],
    [{"type": "x", "list": [1, float("-inf")]}],
    [{"type": "x", "t": (1, 2)}],
    [{"type": "x", "s": {1, 2}}],
    [{"type": "x", "b": b"bytes"}],
    [{"type": "x", "k": {1: "int key"}}],
    [{"type": "x", "k": {None: "null key"}}],
    [{"type": "x", "o": object()}],
    [{"type": "x", "uuid": 5}],
    [{"type": "x", "uuid": {"$gt": ""}}],
    [{"type": "x", "uuid": ""}, {"type": "x", "uuid": ""}],
    [{"type": "x", "uuid": None}, {"type": "x", "uuid": None}],
    [{"type": "x", "uuid": "\ud83d"}, {"type": "x", "uuid": "\ud83d"}],
    [{"type": "x", "uuid": "%ud83d"}, {"type": "x", "uuid": "\ud83d"}],
    *([{"type": "x", "uuid": odd}, {"type": "x", "uuid": odd}] for odd in ODD_UUIDS),
    [nested_entry(MAX_DEPTH), nested_entry(MAX_DEPTH, arrays=True)],
    [nested_entry(MAX_DEPTH, 2**64), nested_entry(MAX_DEPTH, "\ud83d")],
    [nested_entry(MAX_DEPTH - 1, {"$k.\udc00": -(2**70)})],
    [nested_entry(MAX_DEPTH + 1)],
    [nested_entry(MAX_DEPTH + 1, arrays=True)],
    [nested_entry(MAX_DEPTH, [])],
    [nested_entry(MAX_DEPTH, {})],
    [nested_entry(10_000)],
    *([entry] for entry in TRICKY_ENTRIES),
]
"""Batches every store must accept or refuse exactly as the in-memory reference store does."""


class ContractViolation(AssertionError):
    """A store broke the ``SessionStore`` contract."""


class ContractSkipped(unittest.SkipTest):
    """A check could not run here (claude-agent-sdk is not installed); it did not pass."""


def _require_summaries() -> None:
    if not summaries_available():
        raise ContractSkipped("claude-agent-sdk is not installed: summaries cannot be checked")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def _entry(n: int, *, uuid: str | None = None, **extra: Any) -> SessionStoreEntry:
    entry: dict[str, Any] = {"type": "x", "n": n, **extra}
    if uuid is not None:
        entry["uuid"] = uuid
    return entry  # type: ignore[return-value]  # a TypedDict cannot take **extra


async def _fresh(make_store: StoreFactory) -> SessionStore:
    store = make_store()
    if inspect.isawaitable(store):
        return await store
    return store


def _contract(check: Check) -> Check:
    CONTRACT_CHECKS.append(check)
    return check


async def run_contract(make_store: StoreFactory) -> list[str]:
    """Run every check in ``CONTRACT_CHECKS``, each on a fresh store.

    Returns:
        The names of the checks that were skipped (they need claude-agent-sdk); every other
        check passed.

    Raises:
        ContractViolation: The first check that failed, with what it expected.
    """
    skipped: list[str] = []
    for check in CONTRACT_CHECKS:
        try:
            await check(make_store)
        except ContractSkipped:
            skipped.append(check.__name__)
    return skipped


async def _snapshot(store: SessionStore, keys: list[SessionKey]) -> list[Any]:
    return [await store.load(key) for key in keys]


# -- append and load -----------------------------------------------------------------------


@_contract
async def check_round_trip_in_order(make_store: StoreFactory) -> None:
    """Entries come back deep-equal and in append order, across calls."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="b"), _entry(2, uuid="a")])
    await store.append(KEY, [_entry(3, uuid="z")])
    await store.append(KEY, [_entry(4), _entry(5, uuid="m")])
    loaded = await store.load(KEY)
    expected = [_entry(1, uuid="b"), _entry(2, uuid="a"), _entry(3, uuid="z"), _entry(4)]
    expected.append(_entry(5, uuid="m"))
    _expect(loaded == expected, f"load returned {loaded!r}, expected {expected!r}")


@_contract
async def check_unknown_key_loads_none(make_store: StoreFactory) -> None:
    """``load`` of a key never written is ``None``, also for a subpath of a known session."""
    store = await _fresh(make_store)
    _expect(await store.load(KEY) is None, "unknown key must load as None")
    await store.append(KEY, [_entry(1)])
    _expect(await store.load(SUB) is None, "unknown subpath must load as None")


@_contract
async def check_empty_append_on_fresh_key_writes_nothing(make_store: StoreFactory) -> None:
    """``append(key, [])`` leaves a fresh key unknown everywhere."""
    store = await _fresh(make_store)
    await store.append(KEY, [])
    await store.append(SUB, [])
    _expect(await store.load(KEY) is None, "append([]) must not create the transcript")
    _expect(await store.list_sessions("proj") == [], "append([]) must not list a session")
    _expect(await store.list_subkeys(KEY) == [], "append([]) must not create a subkey")


@_contract
async def check_empty_append_on_known_key_is_noop(make_store: StoreFactory) -> None:
    """``append(key, [])`` on a stored transcript changes nothing."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="a")])
    await store.append(KEY, [])
    _expect(await store.load(KEY) == [_entry(1, uuid="a")], "append([]) changed the transcript")


@_contract
async def check_same_batch_three_times_stored_once(make_store: StoreFactory) -> None:
    """Appending one batch three times (the SDK's retry) stores each entry once."""
    store = await _fresh(make_store)
    batch = [_entry(1, uuid="u1"), _entry(2, uuid="u2"), _entry(3, uuid="u3")]
    for _ in range(3):
        await store.append(KEY, copy.deepcopy(batch))
    loaded = await store.load(KEY)
    _expect(loaded == batch, f"retried batch stored as {loaded!r}")


@_contract
async def check_mixed_batch_stores_only_new_uuids_in_order(make_store: StoreFactory) -> None:
    """A batch of known and new uuids appends only the new ones, in batch order."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="a"), _entry(2, uuid="b")])
    await store.append(
        KEY,
        [_entry(10, uuid="c"), _entry(20, uuid="a"), _entry(30, uuid="d"), _entry(40, uuid="b")],
    )
    loaded = await store.load(KEY)
    expected = [
        _entry(1, uuid="a"),
        _entry(2, uuid="b"),
        _entry(10, uuid="c"),
        _entry(30, uuid="d"),
    ]
    _expect(loaded == expected, f"mixed batch stored as {loaded!r}")


@_contract
async def check_duplicate_uuid_within_batch_stored_once(make_store: StoreFactory) -> None:
    """Two entries of one batch with the same uuid: the first is kept."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="a"), _entry(2, uuid="a"), _entry(3, uuid="b")])
    loaded = await store.load(KEY)
    _expect(loaded == [_entry(1, uuid="a"), _entry(3, uuid="b")], f"got {loaded!r}")


@_contract
async def check_entries_without_uuid_always_appended(make_store: StoreFactory) -> None:
    """Entries without ``uuid`` are never deduplicated."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1), _entry(1)])
    await store.append(KEY, [_entry(1)])
    loaded = await store.load(KEY)
    _expect(loaded == [_entry(1)] * 3, f"entries without uuid were deduplicated: {loaded!r}")


@_contract
async def check_uuid_scope_is_one_key(make_store: StoreFactory) -> None:
    """The same uuid under another session, project or subpath is a different entry."""
    store = await _fresh(make_store)
    keys: list[SessionKey] = [
        KEY,
        SUB,
        {"project_key": "proj", "session_id": "other"},
        {"project_key": "other", "session_id": "sess"},
    ]
    for key in keys:
        await store.append(key, [_entry(1, uuid="shared")])
    for key in keys:
        _expect(await store.load(key) == [_entry(1, uuid="shared")], f"uuid leaked into {key!r}")


@_contract
async def check_tricky_entries_round_trip(make_store: StoreFactory) -> None:
    """Unicode, nesting, ``$``/``.``/NUL keys, big integers and empty values round-trip."""
    store = await _fresh(make_store)
    await store.append(KEY, copy.deepcopy(TRICKY_ENTRIES))  # type: ignore[arg-type]
    loaded: list[Any] = await store.load(KEY) or []
    _expect(loaded == TRICKY_ENTRIES, f"tricky entries came back as {loaded!r}")
    for got, sent in zip(loaded, TRICKY_ENTRIES, strict=False):
        for name in ("big", "small", "huge", "vast", "t", "n"):
            if name in sent:
                # int subclasses (bson's Int64) are fine; floats or strings are not.
                kept = isinstance(got[name], type(sent[name]))
                _expect(kept, f"{name} changed type: {type(got[name]).__name__}")


@_contract
async def check_lone_surrogates_round_trip_and_dedupe(make_store: StoreFactory) -> None:
    """Lone UTF-16 surrogates in values, keys and uuids come back as they were; uuids dedupe."""
    store = await _fresh(make_store)
    batch: list[Any] = [
        _entry(1, uuid="\ud83d", text="a split emoji \ud83d"),
        _entry(2, uuid="\ud83d\ude00"),  # two code points, not the emoji U+1F600
        _entry(3, uuid="\U0001f600"),
        {"type": "x", "key \udc00": {"nested \ud800": ["\udfff", "%ud83d"]}},
    ]
    await store.append(KEY, copy.deepcopy(batch))
    await store.append(KEY, copy.deepcopy(batch[:3]))  # known uuids: every one is skipped
    loaded = await store.load(KEY)
    _expect(loaded == batch, f"surrogates came back as {loaded!r}")


@_contract
async def check_non_finite_numbers_refused(make_store: StoreFactory) -> None:
    """``NaN`` and infinities raise ``InvalidEntryError`` naming the entry and the path."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="keep")])
    for number in (float("nan"), float("inf"), float("-inf")):
        batch = [_entry(2, uuid="new"), _entry(3, uuid="bad", usage={"cost": [0.5, number]})]
        try:
            await store.append(KEY, batch)
        except InvalidEntryError as exc:
            named = "entry 1" in str(exc) and "cost" in str(exc)
            _expect(named, f"{number}: the error does not name entry 1 and 'cost': {exc}")
        except Exception as exc:
            raise ContractViolation(f"{number}: raised {type(exc).__name__}") from exc
        else:
            raise ContractViolation(f"{number} was accepted; strict JSON cannot hold it")
    _expect(await store.load(KEY) == [_entry(1, uuid="keep")], "a refused batch stored something")


@_contract
async def check_nesting_limit_is_exact(make_store: StoreFactory) -> None:
    """Entries nest ``MAX_DEPTH`` levels, escaped leaves included; deeper is refused, any depth."""
    store = await _fresh(make_store)
    deepest = [
        nested_entry(MAX_DEPTH, uuid="objects"),
        nested_entry(MAX_DEPTH, arrays=True, uuid="arrays"),
        nested_entry(MAX_DEPTH, 2**64, uuid="big-int"),
        nested_entry(MAX_DEPTH, "\ud83d", uuid="surrogate"),
        nested_entry(MAX_DEPTH - 1, {"$key.": -(2**70)}, uuid="odd-key"),
    ]
    await store.append(KEY, copy.deepcopy(deepest))
    _expect(await store.load(KEY) == deepest, f"entries {MAX_DEPTH} levels deep did not round-trip")
    for too_deep in (
        nested_entry(MAX_DEPTH + 1),
        nested_entry(MAX_DEPTH + 1, arrays=True),
        nested_entry(10_000),  # far past the interpreter's recursion limit
    ):
        await _expect_raises(
            InvalidEntryError,
            store.append(KEY, [_entry(9, uuid="new"), too_deep]),
            "an entry nested too deep",
        )
    _expect(await store.load(KEY) == deepest, "a refused batch changed the transcript")


@_contract
async def check_empty_uuid_is_no_uuid(make_store: StoreFactory) -> None:
    """Entries with ``uuid`` ``""`` or ``null`` are always appended, never deduplicated."""
    store = await _fresh(make_store)
    batch: list[Any] = [_entry(1, uuid=""), _entry(2, uuid=""), {"type": "x", "uuid": None}]
    await store.append(KEY, copy.deepcopy(batch))
    await store.append(KEY, copy.deepcopy(batch))
    loaded = await store.load(KEY)
    _expect(loaded == batch * 2, f"entries with an empty uuid were deduplicated: {loaded!r}")


async def _outcome(store: SessionStore, key: SessionKey, batch: Any) -> tuple[str, Any]:
    try:
        await store.append(key, batch)
    except (InvalidEntryError, InvalidKeyError) as exc:
        return "refused", type(exc).__name__
    return "stored", await store.load(key)


@_contract
async def check_awkward_batches_agree_with_reference_store(make_store: StoreFactory) -> None:
    """Each of ``AWKWARD_BATCHES`` is stored or refused as the in-memory reference store does."""
    store = await _fresh(make_store)
    reference = InMemorySessionStore()
    for number, batch in enumerate(AWKWARD_BATCHES):
        key: SessionKey = {"project_key": "proj", "session_id": f"awkward-{number}"}
        expected = await _outcome(reference, key, batch)
        got = await _outcome(store, key, batch)
        if got != expected:
            raise ContractViolation(
                f"awkward batch {number}: the store gave {_shown(got)}, "
                f"the reference store {_shown(expected)}"
            )


def _shown(outcome: tuple[str, Any]) -> str:
    text = repr(outcome)
    return text if len(text) <= 300 else text[:300] + "…"


@_contract
async def check_stored_entries_are_copies(make_store: StoreFactory) -> None:
    """Mutating an appended or a loaded entry does not change the transcript."""
    store = await _fresh(make_store)
    entry: dict[str, Any] = {"type": "x", "uuid": "a", "items": [1]}
    await store.append(KEY, [entry])  # type: ignore[list-item]
    entry["items"].append(2)
    loaded: list[Any] = await store.load(KEY) or []
    _expect(loaded == [{"type": "x", "uuid": "a", "items": [1]}], "store kept a reference")
    loaded[0]["items"].append(3)
    again = await store.load(KEY)
    _expect(again == [{"type": "x", "uuid": "a", "items": [1]}], "load returned a reference")


# -- keys, sessions and subkeys ------------------------------------------------------------


@_contract
async def check_subkeys_and_projects_are_isolated(make_store: StoreFactory) -> None:
    """Main, subpath, other session and other project transcripts never mix."""
    store = await _fresh(make_store)
    other_project: SessionKey = {"project_key": "other", "session_id": "sess"}
    await store.append(KEY, [_entry(1)])
    await store.append(SUB, [_entry(2)])
    await store.append(other_project, [_entry(3)])
    _expect(await store.load(KEY) == [_entry(1)], "main transcript mixed with others")
    _expect(await store.load(SUB) == [_entry(2)], "subpath transcript mixed with others")
    _expect(await store.load(other_project) == [_entry(3)], "projects are not isolated")
    _expect(len(await store.list_sessions("other")) == 1, "other project lists wrong sessions")


@_contract
async def check_list_sessions(make_store: StoreFactory) -> None:
    """``list_sessions`` lists main transcripts with epoch-ms mtimes that advance on write."""
    store = await _fresh(make_store)
    _expect(await store.list_sessions("proj") == [], "unknown project must list []")
    await store.append(KEY, [_entry(1)])
    await store.append(SUB, [_entry(1)])
    await store.append({"project_key": "proj", "session_id": "b"}, [_entry(1)])
    listed = await store.list_sessions("proj")
    _expect(sorted(s["session_id"] for s in listed) == ["b", "sess"], f"listed {listed!r}")
    _expect(all(isinstance(s["mtime"], int) and s["mtime"] > 10**12 for s in listed), "mtime ms")
    before = {s["session_id"]: s["mtime"] for s in listed}["sess"]
    await asyncio.sleep(0.005)
    await store.append(KEY, [_entry(2)])
    after = {s["session_id"]: s["mtime"] for s in await store.list_sessions("proj")}["sess"]
    _expect(after > before, f"mtime did not advance on append: {before} -> {after}")


@_contract
async def check_list_subkeys(make_store: StoreFactory) -> None:
    """``list_subkeys`` lists exactly the subpaths of one session."""
    store = await _fresh(make_store)
    _expect(await store.list_subkeys(KEY) == [], "unknown session must list no subkeys")
    await store.append(KEY, [_entry(1)])
    await store.append(SUB, [_entry(1)])
    await store.append({**KEY, "subpath": "subagents/agent-2"}, [_entry(1)])
    await store.append(
        {"project_key": "proj", "session_id": "x", "subpath": "subagents/agent-x"}, [_entry(1)]
    )
    subkeys = sorted(await store.list_subkeys({"project_key": "proj", "session_id": "sess"}))
    _expect(subkeys == ["subagents/agent-1", "subagents/agent-2"], f"subkeys {subkeys!r}")


@_contract
async def check_delete_cascades_from_main_only(make_store: StoreFactory) -> None:
    """Deleting a subkey removes only it; deleting the main key removes the whole session."""
    store = await _fresh(make_store)
    sub2: SessionKey = {**KEY, "subpath": "subagents/agent-2"}
    neighbour: SessionKey = {"project_key": "proj", "session_id": "sess2"}
    await store.delete({"project_key": "proj", "session_id": "never-written"})
    for key in (KEY, SUB, sub2, neighbour):
        await store.append(key, [_entry(1, uuid="u")])
    await store.delete(SUB)
    _expect(await store.load(SUB) is None, "deleted subkey still loads")
    _expect(await store.load(sub2) == [_entry(1, uuid="u")], "subkey delete hit a sibling")
    _expect(await store.load(KEY) == [_entry(1, uuid="u")], "subkey delete hit the main key")
    await store.delete(KEY)
    _expect(await store.load(KEY) is None and await store.load(sub2) is None, "no cascade")
    _expect(await store.list_subkeys(KEY) == [], "subkeys survived the cascade")
    listed = [s["session_id"] for s in await store.list_sessions("proj")]
    _expect(listed == ["sess2"], f"after delete listed {listed!r}")
    _expect(await store.load(neighbour) == [_entry(1, uuid="u")], "delete hit a neighbour")


@_contract
async def check_uuids_reusable_after_delete(make_store: StoreFactory) -> None:
    """After a delete, the same uuids can be appended again (e.g. a re-import)."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="a")])
    await store.append(SUB, [_entry(1, uuid="a")])
    await store.delete(KEY)
    await store.append(KEY, [_entry(2, uuid="a")])
    await store.append(SUB, [_entry(2, uuid="a")])
    _expect(await store.load(KEY) == [_entry(2, uuid="a")], "uuid dedupe outlived delete")
    _expect(await store.load(SUB) == [_entry(2, uuid="a")], "subkey dedupe outlived delete")


# -- bad input -----------------------------------------------------------------------------


async def _expect_raises(error: type[Exception], call: Awaitable[object], what: str) -> None:
    try:
        await call
    except error:
        return
    except Exception as exc:
        raise ContractViolation(
            f"{what}: raised {type(exc).__name__}, not {error.__name__}"
        ) from exc
    raise ContractViolation(f"{what}: no {error.__name__} raised")


@_contract
async def check_invalid_keys_refused_and_nothing_changes(make_store: StoreFactory) -> None:
    """Malformed keys (operators, empty, absolute or ``..`` subpaths) raise ``InvalidKeyError``."""
    store = await _fresh(make_store)
    known: list[SessionKey] = [KEY, SUB, {"project_key": "p", "session_id": "s"}]
    for key in known:
        await store.append(key, [_entry(1, uuid="keep")])
    before = await _snapshot(store, known)
    for bad in INVALID_KEYS:
        what = f"key {bad!r}"
        await _expect_raises(InvalidKeyError, store.append(bad, [_entry(9)]), what)
        await _expect_raises(InvalidKeyError, store.load(bad), what)
        await _expect_raises(InvalidKeyError, store.delete(bad), what)
    for bad_project in ("", {"$ne": ""}, None, ["proj"]):
        what = f"project {bad_project!r}"
        await _expect_raises(InvalidKeyError, store.list_sessions(bad_project), what)  # type: ignore[arg-type]
    await _expect_raises(
        InvalidKeyError,
        store.list_subkeys({"project_key": "proj", "session_id": {"$ne": ""}}),  # type: ignore[typeddict-item]
        "list_subkeys with an operator",
    )
    _expect(await _snapshot(store, known) == before, "an invalid key changed stored data")
    listed = sorted(s["session_id"] for s in await store.list_sessions("proj"))
    _expect(listed == ["sess"], f"an invalid key changed the listing: {listed!r}")


@_contract
async def check_invalid_entries_refused_and_nothing_stored(make_store: StoreFactory) -> None:
    """Bad batches store nothing: no list, no object, no ``type``, values JSON cannot hold."""
    store = await _fresh(make_store)
    await store.append(KEY, [_entry(1, uuid="keep")])
    bad_batches: list[Any] = [
        {"type": "x"},
        "entries",
        None,
        [_entry(2, uuid="new"), "not an object"],
        [_entry(2, uuid="new"), {"uuid": "no-type"}],
        [_entry(2, uuid="new"), {"type": 5}],
        [_entry(2, uuid="new"), {"type": "x", "uuid": {"$gt": ""}}],
        [_entry(2, uuid="new"), {"type": "x", "t": (1, 2)}],
        [_entry(2, uuid="new"), {"type": "x", "s": {1}}],
        [_entry(2, uuid="new"), {"type": "x", "b": b"x"}],
        [_entry(2, uuid="new"), {"type": "x", "k": {1: "int key"}}],
        [_entry(2, uuid="new"), {"type": "x", "o": object()}],
    ]
    for batch in bad_batches:
        await _expect_raises(InvalidEntryError, store.append(KEY, batch), f"batch {batch!r}")
        await _expect_raises(
            InvalidEntryError,
            store.append({"project_key": "proj", "session_id": "fresh"}, batch),
            f"batch {batch!r} on a fresh key",
        )
    _expect(await store.load(KEY) == [_entry(1, uuid="keep")], "a bad batch stored something")
    _expect(
        await store.load({"project_key": "proj", "session_id": "fresh"}) is None,
        "a bad batch created a transcript",
    )


# -- concurrency ---------------------------------------------------------------------------


@_contract
async def check_concurrent_writers_lose_and_duplicate_nothing(make_store: StoreFactory) -> None:
    """Eight writers on one session: every entry once, each writer's own order kept."""
    store = await _fresh(make_store)
    writers, batches, per_batch = 8, 6, 3

    async def writer(w: int) -> None:
        for b in range(batches):
            batch = [_entry(b * per_batch + i, uuid=f"w{w}-{b}-{i}", w=w) for i in range(per_batch)]
            await store.append(KEY, batch)
            await store.append(KEY, batch)  # an overlapping retry must not duplicate

    await asyncio.gather(*(writer(w) for w in range(writers)))
    loaded = await store.load(KEY) or []
    uuids = [entry.get("uuid") for entry in loaded]
    _expect(len(uuids) == len(set(uuids)), "concurrent writers duplicated entries")
    _expect(len(uuids) == writers * batches * per_batch, f"expected all entries, got {len(uuids)}")
    for w in range(writers):
        own = [e["n"] for e in loaded if e.get("w") == w]  # type: ignore[typeddict-item]
        _expect(own == sorted(own), f"writer {w}'s order was not kept: {own}")


@_contract
async def check_concurrent_identical_batches_stored_once(make_store: StoreFactory) -> None:
    """The same batch appended by four tasks at once is stored exactly once."""
    store = await _fresh(make_store)
    batch = [_entry(i, uuid=f"same-{i}") for i in range(10)]
    await asyncio.gather(*(store.append(KEY, copy.deepcopy(batch)) for _ in range(4)))
    loaded = await store.load(KEY)
    _expect(loaded == batch, f"concurrent identical batches stored as {loaded!r}")


# -- summaries -----------------------------------------------------------------------------


@_contract
async def check_summaries_match_a_full_fold(make_store: StoreFactory) -> None:
    """Summaries equal the SDK's fold of the whole transcript (odd titles too); no subagents."""
    _require_summaries()
    fold = load_fold()
    store = await _fresh(make_store)
    await store.append(
        KEY,
        [
            _entry(1, uuid="a", timestamp="2026-01-01T00:00:00.000Z", customTitle="first"),
            _entry(2, uuid="b", cwd="/work", gitBranch="main"),
        ],
    )
    await store.append(KEY, [_entry(3, uuid="c", customTitle="second \ud83d")])
    await store.append(KEY, [_entry(3, uuid="c", customTitle="replayed")])
    await store.append(SUB, [_entry(4, customTitle="subagent")])
    await store.append({"project_key": "elsewhere", "session_id": "x"}, [_entry(5)])
    summaries = await store.list_session_summaries("proj")
    _expect([s["session_id"] for s in summaries] == ["sess"], f"summaries {summaries!r}")
    expected = fold(None, KEY, await store.load(KEY) or [])
    _expect(summaries[0]["data"] == expected["data"], f"summary {summaries[0]!r}")
    mtimes = {s["session_id"]: s["mtime"] for s in await store.list_sessions("proj")}
    _expect(summaries[0]["mtime"] >= mtimes["sess"], "summary mtime older than list_sessions'")
    _expect(await store.list_session_summaries("nobody") == [], "unknown project has summaries")
    await store.delete(KEY)
    _expect(await store.list_session_summaries("proj") == [], "summary outlived delete")


@_contract
async def check_concurrent_summaries_stay_consistent(make_store: StoreFactory) -> None:
    """Summaries folded by concurrent writers equal a fold of the final transcript."""
    _require_summaries()
    fold = load_fold()
    store = await _fresh(make_store)

    async def writer(w: int) -> None:
        for b in range(5):
            await store.append(KEY, [_entry(b, uuid=f"s{w}-{b}", lastPrompt=f"w{w}-b{b}")])

    await asyncio.gather(*(writer(w) for w in range(6)))
    summaries = await store.list_session_summaries("proj")
    expected = fold(None, KEY, await store.load(KEY) or [])
    _expect(len(summaries) == 1, f"summaries {summaries!r}")
    _expect(summaries[0]["data"] == expected["data"], "concurrent folds lost an update")
