"""Discover store kinds from plugins and build stores from wire configs.

Usage::

    from session_store_protocol import StoreRegistry

    registry = StoreRegistry()
    registry.kinds()                                  # ['memory', 'mongo', ...]
    store = registry.build({"kind": "mongo", "options": {"database": "tenant_a"}})

    # A harness that configures a kind in code (the Mongo URL stays server-side):
    registry.register("mongo", mongo_session_store_builder({"url": url}), replace=True)

Plugins are modules named by entry points in the ``computeragent.session_stores`` group that
implement the ``register_session_stores`` hook. They load lazily, once per registry, on the first
call that needs them. ``SESSION_STORE_PLUGINS`` restricts which load: unset loads all, an empty
value loads none, ``a,b`` loads only the entry points or distributions named ``a`` and ``b``.

The built-in ``memory`` kind comes with this package itself, whichever distribution ships it:
its plugin (``builtin``) lists no distribution or version.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateKindError, InvalidStoreOptionsError, UnknownKindError
from .hookspecs import Builder, hookimpl
from .memory import InMemorySessionStore
from .types import SessionStore

__all__ = [
    "BUILTIN_PLUGIN",
    "ENTRY_POINT_GROUP",
    "EXPLICIT",
    "PLUGINS_ENV_VAR",
    "PluginFailure",
    "PluginInfo",
    "StoreRegistry",
]

ENTRY_POINT_GROUP = "computeragent.session_stores"
PLUGINS_ENV_VAR = "SESSION_STORE_PLUGINS"
BUILTIN_PLUGIN = "builtin"
EXPLICIT = "explicit"
"""The plugin name recorded for kinds registered with ``StoreRegistry.register``."""

EntryPoints = Callable[[], Iterable[importlib.metadata.EntryPoint]]


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: its name, where it came from and the kinds it registered."""

    name: str
    distribution: str | None
    version: str | None
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised; the others still loaded."""

    name: str
    distribution: str | None
    error: str


@dataclass(frozen=True)
class _Registration:
    """What the registry knows of a kind: who builds it, and which plugin registered it."""

    builder: Builder
    plugin: str


@dataclass(frozen=True)
class _Source:
    """Where a loaded plugin came from."""

    distribution: str | None = None
    version: str | None = None


class _BuiltinPlugin:
    """Kind ``memory``: one store per registry, so a session resumed in-process is found."""

    def __init__(self) -> None:
        self._store: InMemorySessionStore | None = None

    def build_memory(self, options: Mapping[str, Any] | None) -> SessionStore:
        if options:
            raise InvalidStoreOptionsError(
                f"store kind 'memory' takes no options, got {sorted(map(str, options))}"
            )
        if self._store is None:
            self._store = InMemorySessionStore()
        return self._store

    @hookimpl
    def register_session_stores(self, register: hookspecs.Register) -> None:
        register("memory", self.build_memory)


def _group_entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


class StoreRegistry:
    """Store kinds by name, from the built-in plugin, entry points and explicit registration.

    Each registry has its own plugin manager, so tests and harnesses can hold several without
    shared state. Nothing is imported or loaded until a method needs the kinds.
    """

    def __init__(
        self,
        *,
        load_entry_points: bool = True,
        entry_points: EntryPoints = _group_entry_points,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Create an empty registry; plugins load on first use.

        Args:
            load_entry_points: Set ``False`` to use only the built-in and explicit kinds.
            entry_points: Where entry points come from (tests pass fake distributions).
            environ: Where ``SESSION_STORE_PLUGINS`` is read; defaults to ``os.environ``.
        """
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._entry_points = entry_points
        self._environ = os.environ if environ is None else environ
        self._registrations: dict[str, _Registration] = {}
        """The one map of kinds: kind -> (builder, plugin). Kinds per plugin derive from it."""
        self._sources: dict[str, _Source] = {}
        self._failures: list[PluginFailure] = []
        self._loaded = False
        self._load_error: DuplicateKindError | None = None

    # -- loading ---------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._load_error is not None:
            raise self._load_error
        if self._loaded:
            return
        self._loaded = True
        self._manager.register(_BuiltinPlugin(), name=BUILTIN_PLUGIN)
        self._sources[BUILTIN_PLUGIN] = _Source()
        if self._load_entry_points:
            self._load_group()
        try:
            for impl in self._manager.hook.register_session_stores.get_hookimpls():
                self._call_plugin(impl.plugin_name, impl.function)
        except DuplicateKindError as exc:
            # Which plugin should win is the operator's call: refuse every use until fixed.
            self._load_error = exc
            raise

    def _allowed(self) -> set[str] | None:
        raw = self._environ.get(PLUGINS_ENV_VAR)
        if raw is None:
            return None
        return {name.strip() for name in raw.split(",") if name.strip()}

    def _load_group(self) -> None:
        allowed = self._allowed()
        for entry_point in self._entry_points():
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            if allowed is not None and not ({entry_point.name, dist_name} & allowed):
                continue
            if self._manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                self._manager.register(plugin, name=entry_point.name)
            except Exception as exc:  # a broken plugin must not hide the others
                self._fail(entry_point.name, dist_name, exc)
                continue
            self._sources[entry_point.name] = _Source(
                dist_name, dist.version if dist is not None else None
            )

    def _call_plugin(self, plugin: str, hook: Callable[..., object]) -> None:
        offered: dict[str, Builder] = {}

        def register(kind: str, builder: Builder) -> None:
            if not isinstance(kind, str) or not kind:
                raise ValueError(f"a store kind must be a non-empty string, got {kind!r}")
            if not callable(builder):
                raise TypeError(f"the builder for kind {kind!r} is not callable")
            if kind in offered:
                raise DuplicateKindError(f"plugin {plugin!r} registered kind {kind!r} twice")
            offered[kind] = builder

        try:
            hook(register=register)
        except Exception as exc:  # report it; this plugin's kinds stay out, the rest load
            self._fail(plugin, self._sources[plugin].distribution, exc)
            return
        for kind, builder in offered.items():
            self._add(kind, builder, plugin)

    def _fail(self, name: str, distribution: str | None, exc: BaseException) -> None:
        self._failures.append(PluginFailure(name, distribution, f"{type(exc).__name__}: {exc}"))
        self._sources.pop(name, None)
        if self._manager.has_plugin(name):
            self._manager.unregister(name=name)

    def _add(self, kind: str, builder: Builder, plugin: str) -> None:
        existing = self._registrations.get(kind)
        if existing is not None:
            raise DuplicateKindError(
                f"store kind {kind!r} is registered by both plugin {existing.plugin!r} "
                f"and plugin {plugin!r}"
            )
        self._registrations[kind] = _Registration(builder, plugin)
        self._sources.setdefault(plugin, _Source())

    def _registration(self, kind: str) -> _Registration:
        """The one lookup of a kind, for ``builder`` and ``plugin_for``."""
        self._ensure_loaded()
        registration = self._registrations.get(kind)
        if registration is None:
            raise UnknownKindError(kind, self._registrations)
        return registration

    def _info(self, plugin: str) -> PluginInfo:
        source = self._sources[plugin]
        kinds = tuple(k for k, r in self._registrations.items() if r.plugin == plugin)
        return PluginInfo(plugin, source.distribution, source.version, kinds)

    # -- public API ------------------------------------------------------------------------

    def register(self, kind: str, builder: Builder, *, replace: bool = False) -> None:
        """Register a kind in code, e.g. ``mongo`` with a server-side URL.

        Args:
            kind: The store kind clients will name in their wire config.
            builder: ``builder(options) -> SessionStore``.
            replace: Replace a kind that a plugin (or an earlier call) registered.

        Raises:
            DuplicateKindError: The kind exists and ``replace`` is false.
        """
        self._ensure_loaded()
        if replace:
            self._registrations.pop(kind, None)
        self._add(kind, builder, EXPLICIT)

    def add_plugin(self, plugin: object, name: str) -> None:
        """Register a plugin object (e.g. one defined in a test) and call its hook now.

        Raises:
            DuplicateKindError: It offers a kind that is already registered.
            ValueError: A plugin of that name is already registered.
        """
        self._ensure_loaded()
        self._manager.register(plugin, name=name)
        self._sources[name] = _Source()
        for impl in self._manager.hook.register_session_stores.get_hookimpls():
            if impl.plugin is plugin:
                self._call_plugin(name, impl.function)

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin added with ``add_plugin`` and drop the kinds it registered."""
        self._ensure_loaded()
        self._sources.pop(name, None)
        for kind in [k for k, r in self._registrations.items() if r.plugin == name]:
            del self._registrations[kind]
        if self._manager.has_plugin(name):
            self._manager.unregister(name=name)

    def kinds(self) -> list[str]:
        """Return the available store kinds, sorted."""
        self._ensure_loaded()
        return sorted(self._registrations)

    def builder(self, kind: str) -> Builder:
        """Return the builder for ``kind``.

        Raises:
            UnknownKindError: No plugin offers it; the message lists the kinds that exist.
        """
        return self._registration(kind).builder

    def build(self, config: Mapping[str, Any]) -> SessionStore:
        """Build a store from a wire config ``{"kind": ..., "options": {...} | None}``.

        Raises:
            InvalidStoreOptionsError: The config is not of that shape.
            UnknownKindError: No plugin offers the kind.
        """
        if not isinstance(config, Mapping):
            raise InvalidStoreOptionsError(
                f"a store config must be a mapping, got {type(config).__name__}"
            )
        unknown = set(config) - {"kind", "options"}
        if unknown:
            raise InvalidStoreOptionsError(
                f"unknown store config keys: {sorted(map(str, unknown))}"
            )
        kind, options = config.get("kind"), config.get("options")
        if not isinstance(kind, str) or not kind:
            raise InvalidStoreOptionsError("a store config needs a non-empty string 'kind'")
        if options is not None and not isinstance(options, Mapping):
            raise InvalidStoreOptionsError(
                f"store options must be a mapping or null, got {type(options).__name__}"
            )
        return self.builder(kind)(options)

    def plugins(self) -> list[PluginInfo]:
        """List the plugins that loaded, with distribution, version and kinds."""
        self._ensure_loaded()
        return [self._info(name) for name in sorted(self._sources)]

    def failures(self) -> list[PluginFailure]:
        """List the plugins that failed to import or register, with their errors."""
        self._ensure_loaded()
        return list(self._failures)

    def plugin_for(self, kind: str) -> PluginInfo:
        """Return the plugin that registered ``kind``.

        Raises:
            UnknownKindError: No plugin offers it.
        """
        return self._info(self._registration(kind).plugin)
