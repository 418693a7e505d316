"""Plugin discovery and the registry: lazy loading, entry points, errors, restriction."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import session_store_protocol
from session_store_protocol import (
    PLUGINS_ENV_VAR,
    DuplicateKindError,
    InMemorySessionStore,
    InvalidStoreOptionsError,
    PluginInfo,
    SessionStore,
    StoreRegistry,
    UnknownKindError,
    hookimpl,
)
from session_store_protocol.registry import BUILTIN_PLUGIN, EXPLICIT


class _FakeDistributions:
    """Installs throwaway distributions (dist-info + module) on ``sys.path``, as pip would."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        monkeypatch.syspath_prepend(str(root))
        self.modules: list[str] = []

    def install(self, dist: str, entry_point: str, module: str, source: str) -> None:
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(
            f"[computeragent.session_stores]\n{entry_point} = {module}\n"
        )
        self.modules.append(module)
        importlib.invalidate_caches()


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_FakeDistributions]:
    dists = _FakeDistributions(tmp_path, monkeypatch)
    monkeypatch.delenv(PLUGINS_ENV_VAR, raising=False)
    yield dists
    for module in dists.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


REDIS_PLUGIN = """
    from session_store_protocol import InMemorySessionStore, hookimpl

    @hookimpl
    def register_session_stores(register):
        register("fake-redis", lambda options: InMemorySessionStore())
"""


def test_memory_kind_is_built_in() -> None:
    """A registry offers ``memory`` with no plugin installed, and builds it from a wire config."""
    registry = StoreRegistry(load_entry_points=False)
    assert registry.kinds() == ["memory"]
    assert isinstance(registry.build({"kind": "memory"}), InMemorySessionStore)


async def test_memory_builder_hands_out_one_store_per_registry() -> None:
    """A session written through one build is found by the next build of the same registry."""
    registry = StoreRegistry(load_entry_points=False)
    key = {"project_key": "p", "session_id": "s"}
    await registry.build({"kind": "memory"}).append(key, [{"type": "user"}])
    assert await registry.build({"kind": "memory", "options": None}).load(key) == [{"type": "user"}]
    other = StoreRegistry(load_entry_points=False).build({"kind": "memory"})
    assert await other.load(key) is None
    assert InMemorySessionStore() is not InMemorySessionStore()


def test_installed_project_offers_mongo() -> None:
    """With the project installed, discovery finds kind ``mongo`` through its entry point."""
    registry = StoreRegistry()
    assert {"memory", "mongo"} <= set(registry.kinds())
    plugin = registry.plugin_for("mongo")
    assert plugin.name == "mongo"
    assert plugin.distribution == "session-store-mongo"
    assert plugin.version
    assert registry.failures() == []


def test_unknown_kind_is_a_key_error_listing_kinds() -> None:
    """An unknown kind raises ``UnknownKindError`` (also a ``KeyError``) naming what exists."""
    registry = StoreRegistry(load_entry_points=False)
    with pytest.raises(KeyError) as caught:
        registry.build({"kind": "redis"})
    assert isinstance(caught.value, UnknownKindError)
    assert str(caught.value) == "unknown session store kind 'redis'; available kinds: memory"


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"kind": ""},
        {"kind": 3},
        {"kind": "memory", "options": "x"},
        {"kind": "memory", "url": "mongodb://x"},
        {"kind": "memory", "options": {"size": 1}},
        ["memory"],
    ],
)
def test_malformed_wire_configs_are_refused(config: Any) -> None:
    """A wire config that is not ``{kind, options}`` raises ``InvalidStoreOptionsError``."""
    with pytest.raises(InvalidStoreOptionsError):
        StoreRegistry(load_entry_points=False).build(config)


def test_entry_point_plugin_is_discovered(fake_dists: _FakeDistributions) -> None:
    """An installed distribution's entry point adds its kind, listed with dist and version."""
    fake_dists.install("fake-redis-store", "fake-redis", "fake_redis_plugin", REDIS_PLUGIN)
    registry = StoreRegistry()
    assert "fake-redis" in registry.kinds()
    info = registry.plugin_for("fake-redis")
    assert (info.name, info.distribution, info.version) == (
        "fake-redis",
        "fake-redis-store",
        "1.2.3",
    )
    assert isinstance(registry.build({"kind": "fake-redis"}), InMemorySessionStore)


def test_loading_is_lazy(fake_dists: _FakeDistributions) -> None:
    """Creating a registry imports no plugin; the first call that needs kinds does, once."""
    fake_dists.install("lazy-dist", "lazy", "lazy_plugin", REDIS_PLUGIN)
    registry = StoreRegistry()
    assert "lazy_plugin" not in sys.modules
    registry.kinds()
    module = sys.modules["lazy_plugin"]
    registry.kinds()
    assert sys.modules["lazy_plugin"] is module
    assert [p.name for p in registry.plugins()].count("lazy") == 1


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", {"memory"}),
        ("fake-redis-store", {"memory", "fake-redis"}),
        ("mongo", {"memory", "mongo"}),
        (" mongo , fake-redis-store ", {"memory", "mongo", "fake-redis"}),
    ],
)
def test_environment_variable_restricts_entry_points(
    fake_dists: _FakeDistributions, setting: str, expected: set[str]
) -> None:
    """``SESSION_STORE_PLUGINS`` loads only the named entry points or distributions."""
    fake_dists.install("fake-redis-store", "fake-redis", "fake_redis_plugin", REDIS_PLUGIN)
    registry = StoreRegistry(environ={PLUGINS_ENV_VAR: setting})
    assert set(registry.kinds()) == expected


def test_broken_plugin_is_reported_and_others_load(fake_dists: _FakeDistributions) -> None:
    """A plugin that fails to import is listed in ``failures()``; the other kinds still load."""
    fake_dists.install("broken-dist", "broken", "broken_plugin", "import no_such_module_here\n")
    fake_dists.install("fake-redis-store", "fake-redis", "fake_redis_plugin", REDIS_PLUGIN)
    registry = StoreRegistry()
    assert {"memory", "mongo", "fake-redis"} <= set(registry.kinds())
    [failure] = registry.failures()
    assert failure.name == "broken"
    assert failure.distribution == "broken-dist"
    assert "no_such_module_here" in failure.error
    assert "broken" not in [p.name for p in registry.plugins()]


def test_plugin_whose_hook_raises_is_reported(fake_dists: _FakeDistributions) -> None:
    """A hook that raises leaves that plugin's kinds out and is reported with its error."""
    source = """
        from session_store_protocol import hookimpl

        @hookimpl
        def register_session_stores(register):
            register("half", lambda options: None)
            raise RuntimeError("misconfigured")
    """
    fake_dists.install("raising-dist", "raising", "raising_plugin", source)
    registry = StoreRegistry()
    assert "half" not in registry.kinds()
    assert [(f.name, f.error) for f in registry.failures()] == [
        ("raising", "RuntimeError: misconfigured")
    ]


def test_duplicate_kind_from_two_plugins_names_both(fake_dists: _FakeDistributions) -> None:
    """Two plugins registering one kind is a ``DuplicateKindError`` naming both plugins."""
    fake_dists.install("dist-one", "one", "plugin_one", REDIS_PLUGIN)
    fake_dists.install("dist-two", "two", "plugin_two", REDIS_PLUGIN)
    registry = StoreRegistry()
    with pytest.raises(DuplicateKindError) as caught:
        registry.kinds()
    assert "'one'" in str(caught.value)
    assert "'two'" in str(caught.value)
    with pytest.raises(DuplicateKindError):
        registry.build({"kind": "memory"})


class _InTestPlugin:
    """A plugin defined in the test, registered on one registry's plugin manager."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.built: list[Mapping[str, Any] | None] = []

    def build(self, options: Mapping[str, Any] | None) -> SessionStore:
        self.built.append(options)
        return InMemorySessionStore()

    @hookimpl
    def register_session_stores(self, register: Any) -> None:
        register(self.kind, self.build)


def test_in_test_plugin_registered_then_unregistered() -> None:
    """A plugin object added at run time offers its kind, gets wire options, and goes away."""
    registry = StoreRegistry(load_entry_points=False)
    plugin = _InTestPlugin("in-test")
    registry.add_plugin(plugin, name="in-test-plugin")
    try:
        assert "in-test" in registry.kinds()
        assert registry.plugin_for("in-test").name == "in-test-plugin"
        registry.build({"kind": "in-test", "options": {"table": "t"}})
        assert plugin.built == [{"table": "t"}]
    finally:
        registry.remove_plugin("in-test-plugin")
    assert "in-test" not in registry.kinds()
    assert "in-test-plugin" not in [p.name for p in registry.plugins()]


def test_explicit_registration_and_replace() -> None:
    """``register`` adds a kind in code; a clash needs ``replace=True``, then the new one wins."""
    registry = StoreRegistry()
    first, second = _InTestPlugin("x"), _InTestPlugin("x")
    registry.register("custom", first.build)
    assert registry.plugin_for("custom").name == EXPLICIT
    with pytest.raises(DuplicateKindError):
        registry.register("custom", second.build)
    with pytest.raises(DuplicateKindError):
        registry.register("mongo", second.build)
    registry.register("mongo", second.build, replace=True)
    registry.build({"kind": "mongo", "options": {"database": "a"}})
    assert second.built == [{"database": "a"}]
    assert "mongo" not in registry.plugin_for("memory").kinds
    assert registry.plugin_for("mongo").kinds == ("custom", "mongo")


def test_registries_share_no_state() -> None:
    """Kinds registered on one registry never appear in another."""
    one, two = StoreRegistry(load_entry_points=False), StoreRegistry(load_entry_points=False)
    one.register("only-here", _InTestPlugin("k").build)
    assert "only-here" in one.kinds()
    assert "only-here" not in two.kinds()


def test_every_hook_has_a_test_and_a_readme_heading() -> None:
    """Meta: each hookspec is exercised here and documented under a README heading."""
    from session_store_protocol import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert hooks == ["register_session_stores"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    tests = Path(__file__).read_text()
    for hook in hooks:
        assert f"def {hook}" in tests
        assert any(line.startswith("#") and hook in line for line in readme.splitlines())


def test_kinds_per_plugin_follow_every_registration_change() -> None:
    """``plugins()`` and ``plugin_for`` list exactly the kinds each plugin holds right now."""
    registry = StoreRegistry(load_entry_points=False)
    assert registry.plugin_for("memory") == PluginInfo(BUILTIN_PLUGIN, None, None, ("memory",))
    plugin = _InTestPlugin("two")
    registry.add_plugin(plugin, name="pair")
    try:
        registry.register("one", plugin.build)
        registry.register("two", plugin.build, replace=True)  # taken over from plugin "pair"
        kinds = {info.name: info.kinds for info in registry.plugins()}
        assert kinds == {BUILTIN_PLUGIN: ("memory",), EXPLICIT: ("one", "two"), "pair": ()}
        assert registry.plugin_for("two").name == EXPLICIT
    finally:
        registry.remove_plugin("pair")
    assert registry.kinds() == ["memory", "one", "two"]  # the explicit kinds stay


def test_protocol_package_names_no_distribution_that_ships_it() -> None:
    """The protocol package could ship on its own: its source names no hosting distribution."""
    package = Path(session_store_protocol.__file__).parent
    for path in sorted(package.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "session-store-mongo" not in text, path.name
        assert "session_store_mongo" not in text, path.name
