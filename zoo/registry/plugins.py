"""The component registry: plugins found through entry points, loaded once, each behind its own guard."""

from __future__ import annotations

import fnmatch
import functools
import importlib
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, PathDistribution, entry_points
from pathlib import Path

import pluggy

from zoo import deprecation
from zoo.errors import ZooError
from zoo.names import DISTRIBUTION, is_name
from zoo.registry import hookspecs
from zoo.registry.library import LibraryModel, is_library_name
from zoo.registry.signature import Param, Signature, check_params, live_signature, static_signature, type_hints
from zoo.text import clip, did_you_mean, with_article

ENTRY_POINT_GROUP = "zoo.plugins"
BUILTIN = DISTRIBUTION  # the distribution of zoo's own plugins, whose names a bare name means in a clash
TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class PluginWarning(UserWarning):
    """A plugin failed to load or register; the others keep working."""


@dataclass(frozen=True)
class Plugin:
    """A plugin as discovered: its entry point, the distribution that ships it, and how loading went."""

    name: str
    module: str
    dist: str = "unknown"
    version: str = ""
    status: str = "loaded"  # loaded | broken | disabled
    error: str = ""
    warning: str = ""  # loaded, but with hooks this zoo does not know (never called)

    def __str__(self) -> str:
        shipped = f"{self.dist} {self.version}".strip()
        return f"'{self.name}' ({shipped}, module {self.module})"


@dataclass(eq=False)
class Component:
    """A registered factory of one kind, and the plugin that provides it."""

    name: str
    kind: str
    factory: Callable | str
    plugin: Plugin
    _signature: Signature | None = field(default=None, repr=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.name}:{self.name}"

    @property
    def library(self) -> str | None:
        """The library whose architecture this is, when a bridge registered it (zoo.registry.library)."""
        return self.factory.library if isinstance(self.factory, LibraryModel) else None

    @property
    def signature(self) -> Signature:
        """Read from source when possible; a factory that cannot be imported has an empty one saying why."""
        if self._signature is None:
            static = static_signature(self.factory) if isinstance(self.factory, str) else None
            try:
                self._signature = static or live_signature(self.target)
            except ZooError as exc:
                self._signature = Signature(f"(broken) {exc}", ())
        return self._signature

    @property
    def summary(self) -> str:
        return self.signature.summary

    @property
    def doc(self) -> str:
        return self.signature.doc

    @property
    def params(self) -> tuple[Param, ...]:
        return self.signature.params

    @functools.cached_property
    def target(self) -> Callable:
        """The factory itself, imported on first use when registered as a string."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except Exception as exc:
            raise ZooError(
                f"{self.kind} '{self.name}' from plugin {self.plugin} cannot be imported "
                f"from '{self.factory}': {type(exc).__name__}: {exc}"
            ) from exc

    @functools.cached_property
    def hints(self) -> dict[str, object]:
        """The factory's parameter type hints, resolved (empty when they cannot be)."""
        return type_hints(self.target)

    def check(self, params: dict[str, object]) -> None:
        """Raise ParamError unless ``params`` are accepted by the factory, each of the right type."""
        check_params(f"{self.kind} '{self.name}'", self.target, params)

    def build(self, **params: object) -> object:
        """Call the factory with checked parameters."""
        self.check(params)
        return self.target(**params)


@dataclass(frozen=True)
class Command:
    """A command-line command a plugin adds (see hookspecs.register_commands)."""

    name: str
    run: Callable[[object], int]
    help: str
    arguments: Callable[[object], None] | None
    plugin: Plugin
    description: str = ""


class Registry:
    """Components of every kind, from the plugins of one entry-point group, loaded lazily once."""

    def __init__(
        self,
        plugins: Iterable[EntryPoint] | None = None,
        *,
        disabled: Iterable[str] = (),
        strict: bool = False,
    ):
        self._entry_points = plugins
        self._disabled = set(disabled)
        self._strict = strict
        self._plugins: dict[str, Plugin] = {}
        self._components: dict[tuple[str, str], list[Component]] = {}
        self._catalogs: list[tuple[Plugin, Path]] = []
        self._commands: list[Command] = []
        self._formerly: dict[tuple[str, str], tuple[Component, str]] = {}  # (kind, old name) -> (it now, since)
        self._manager = pluggy.PluginManager("zoo")
        self._loaded = False

    @classmethod
    def from_environment(cls, disabled: Iterable[str] = (), strict: bool = False) -> Registry:
        """A registry of the installed plugins less those in ``disabled`` (as ``-p no:NAME`` gives them)
        and in $ZOO_PLUGINS_DISABLE (NAME,...); ``strict`` (or $ZOO_PLUGINS_STRICT=1) makes a broken
        plugin or a name clash an error."""
        from_env = [n.strip() for n in os.environ.get("ZOO_PLUGINS_DISABLE", "").split(",") if n.strip()]
        strict = strict or os.environ.get("ZOO_PLUGINS_STRICT", "").lower() in ("1", "true", "yes")
        return cls(disabled=[*from_env, *disabled], strict=strict)

    @property
    def plugins(self) -> list[Plugin]:
        self._load()
        return list(self._plugins.values())

    def components(self, kind: str | None = None, pattern: str | None = None) -> list[Component]:
        """Components of ``kind`` (all kinds by default) whose name matches the fnmatch ``pattern``."""
        self._load()
        if kind is not None:
            self._check_kind(kind)
        order = list(hookspecs.KINDS)
        found = [
            c
            for (k, _), group in self._components.items()
            for c in group
            if kind in (None, k)
            and (pattern is None or fnmatch.fnmatchcase(c.name, pattern.lower())
                 or fnmatch.fnmatchcase(c.qualified_name, pattern.lower()))
        ]
        return sorted(found, key=lambda c: (order.index(c.kind), c.name, c.plugin.name))

    def catalogs(self) -> list[tuple[Plugin, Path]]:
        """The catalog files the loaded plugins ship, with their plugin."""
        self._load()
        return list(self._catalogs)

    def commands(self) -> list[Command]:
        """The command-line commands the loaded plugins add."""
        self._load()
        return list(self._commands)

    def conflicts(self) -> list[list[Component]]:
        """Groups of components that share a kind and a name."""
        self._load()
        return [group for group in self._components.values() if len(group) > 1]

    def get(self, name: str, kind: str | None = None) -> Component:
        """The component called ``name`` (or ``plugin:name``), of ``kind`` or of the only kind that has it;
        an old name a plugin renamed means the new one for its deprecation period, with a warning."""
        self._load()
        plugin, _, bare = name.rpartition(":")
        if not any((k, bare) in self._components for k in ([kind] if kind else hookspecs.KINDS)):
            renamed = [found for k in ([kind] if kind else hookspecs.KINDS) if (found := self._formerly.get((k, bare)))]
            if len(renamed) == 1 and (not plugin or plugin in (renamed[0][0].plugin.name, renamed[0][0].plugin.dist)):
                component, since = renamed[0]
                deprecation.warn(f"{component.kind} '{bare}' (of plugin {component.plugin.name})",
                                 f"'{component.qualified_name}'", since, stacklevel=3)
                return component
        kinds = [kind] if kind is not None else [k for k in hookspecs.KINDS if (k, bare) in self._components]
        if kind is not None:
            self._check_kind(kind)
        if len(kinds) > 1:
            raise ZooError(
                f"'{bare}' names {' and '.join(map(with_article, kinds))}: pass kind= one of {', '.join(kinds)}"
            )
        candidates = self._components.get((kinds[0], bare), []) if kinds else []
        if plugin:
            candidates = [c for c in candidates if plugin in (c.plugin.name, c.plugin.dist)]
        if not candidates:
            raise ZooError(self._unknown(name, kind))
        if len(candidates) > 1:
            builtin = [c for c in candidates if c.plugin.dist == BUILTIN]
            if len(builtin) != 1:
                raise ZooError(clash_message(candidates))
            return builtin[0]  # a bare name means zoo's own: a plugin installed later cannot change it
        return candidates[0]

    def first(self, hook: str, **arguments: object) -> object:
        """The first answer (not None) of the loaded plugins' implementations of ``hook`` (one of
        hookspecs.EXTENSIONS declared ``firstresult``); a ZooError they raise passes on, anything
        else becomes one naming the hook."""
        self._load()
        try:
            return getattr(self._manager.hook, hook)(**arguments)
        except ZooError:
            raise
        except Exception as exc:
            plugins = ", ".join(sorted({impl.plugin_name for impl in getattr(self._manager.hook, hook).get_hookimpls()}))
            raise ZooError(f"a plugin's {hook} hook ({plugins}) raised {type(exc).__name__}: {exc}") from exc

    def hook_plugins(self) -> list[tuple[Plugin, object]]:
        """The loaded plugins and their hook objects (modules, mostly), in load order: what a run's
        events are delivered to (see zoo.registry.events)."""
        self._load()
        return [(p, self._manager.get_plugin(p.name)) for p in self._plugins.values() if p.status == "loaded"]

    def _unknown(self, name: str, kind: str | None) -> str:
        bare = name.rpartition(":")[2]
        what = kind or "component"
        elsewhere = [k for k in hookspecs.KINDS if k != kind and (k, bare) in self._components]
        if kind is not None and elsewhere:
            return f"'{bare}' is {with_article(elsewhere[0])}, not {with_article(kind)}"
        if bare != name and any(n == bare for _, n in self._components):
            return f"no plugin '{name.rpartition(':')[0]}' provides {what} '{bare}'; see 'zoo list {bare}'"
        plugin = name.rpartition(":")[0]
        own = sorted(c.qualified_name for (k, _), group in self._components.items() for c in group
                     if kind in (None, k) and c.plugin.name == plugin) if plugin else []
        if own:  # timm:resnet19: among that plugin's names
            hint, listing = did_you_mean(name, own, n=3), f"zoo list '{plugin}:*'"
        else:
            names = sorted({n for k, n in self._components if kind in (None, k)})
            hint, listing = did_you_mean(bare, names, n=3), f"zoo list --kind {kind}" if kind else "zoo list"
        return f"unknown {what} '{clip(name)}'.{hint} Run '{listing}' to see them all."

    def _check_kind(self, kind: str) -> None:
        if kind not in hookspecs.KINDS:
            raise ZooError(f"unknown kind '{kind}': choose one of {', '.join(hookspecs.KINDS)}")

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        manager = self._manager
        manager.add_hookspecs(hookspecs)
        found = self._entry_points
        for ep in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
            self._load_plugin(manager, ep)
        for plugin in list(self._plugins.values()):
            if plugin.status == "loaded":
                self._register_components(manager, plugin)
        unknown = sorted(self._disabled - set(self._plugins) - {p.dist for p in self._plugins.values()})
        if unknown:
            known = sorted(self._plugins)
            raise ZooError(f"no plugin '{unknown[0]}' to switch off.{did_you_mean(unknown[0], known)} "
                           f"Plugins: {', '.join(known)}")
        for group in self.conflicts():
            if any(c.library for c in group):  # libraries share names (resnet18): said when a bare one is used
                continue
            message = clash_message(group)
            if self._strict:
                raise ZooError(message + " (name clashes are fatal: --strict-plugins or ZOO_PLUGINS_STRICT)")
            warnings.warn(message, PluginWarning, stacklevel=2)

    def _load_plugin(self, manager: pluggy.PluginManager, ep: EntryPoint) -> None:
        plugin = Plugin(ep.name, ep.value, *_shipped_by(ep))
        if ep.name in self._disabled or plugin.dist in self._disabled:
            self._plugins[ep.name] = replace(plugin, status="disabled")
            return
        if ep.name in self._plugins:
            self._fail(plugin, f"another plugin is already called '{ep.name}': {self._plugins[ep.name]}")
            return
        self._plugins[ep.name] = plugin
        try:
            manager.register(ep.load(), name=ep.name)
        except (Exception, SystemExit) as exc:
            if manager.has_plugin(ep.name):
                manager.unregister(name=ep.name)
            self._fail(plugin, f"{type(exc).__name__}: {exc}")
            return
        unknown = _unknown_hooks(manager, ep.name)
        if unknown:  # written for a newer zoo, or misspelt: its known hooks still work
            known = [*hookspecs.KINDS.values(), *hookspecs.EXTENSIONS, *hookspecs.EVENTS]
            notes = " ".join(f"unknown hook '{name}'.{did_you_mean(name, known)}" for name in unknown)
            self._plugins[ep.name] = replace(plugin, warning=f"{notes} This zoo never calls it (the plugin is "
                                                            "written for a newer zoo, or the name is misspelt)")

    def _register_components(self, manager: pluggy.PluginManager, plugin: Plugin) -> None:
        staged: dict[tuple[str, str], Component] = {}
        renames: dict[tuple[str, str], tuple[Component, str]] = {}
        for kind, hook in hookspecs.KINDS.items():
            for impl in getattr(manager.hook, hook).get_hookimpls():
                if impl.plugin_name != plugin.name:
                    continue
                register = functools.partial(_stage, staged, kind, plugin, renames)
                try:
                    impl.function(*[{"register": register}[arg] for arg in impl.argnames])
                except Exception as exc:
                    self._fail(plugin, f"hook {hook} raised {type(exc).__name__}: {exc}")
                    return
        catalogs: list[tuple[Plugin, Path]] = []
        commands: list[Command] = []

        def catalog(path: str | Path) -> None:
            if not Path(path).is_file():
                raise ZooError(f"catalog {path} is not a file")
            catalogs.append((plugin, Path(path)))

        def command(name: str, run: Callable[[object], int], help: str = "",
                    arguments: Callable[[object], None] | None = None, description: str = "") -> None:
            if not isinstance(name, str) or not is_name(name) or not callable(run):
                raise ZooError(f"command {name!r}: a kebab-case name and a callable run(args) are needed")
            commands.append(Command(name, run, help, arguments, plugin, description))

        for hook, register in (("register_catalogs", catalog), ("register_commands", command)):
            for impl in getattr(manager.hook, hook).get_hookimpls():
                if impl.plugin_name != plugin.name:
                    continue
                try:
                    impl.function(*[{"register": register}[arg] for arg in impl.argnames])
                except Exception as exc:
                    self._fail(plugin, f"hook {hook} raised {type(exc).__name__}: {exc}")
                    return
        for component in staged.values():
            self._components.setdefault((component.kind, component.name), []).append(component)
        self._formerly.update(renames)
        self._catalogs += catalogs
        self._commands += commands

    def _fail(self, plugin: Plugin, error: str) -> None:
        self._plugins[plugin.name] = replace(plugin, status="broken", error=error)
        message = f"zoo plugin {plugin} is broken and was skipped: {error}"
        if self._strict:
            raise ZooError(message + " (plugin errors are fatal: --strict-plugins or ZOO_PLUGINS_STRICT)")
        warnings.warn(message, PluginWarning, stacklevel=3)


def _shipped_by(ep: EntryPoint) -> tuple[str, str]:
    """The name and version of the distribution an entry point comes from (its METADATA parsed once
    per distribution, not once per entry point and field)."""
    dist = ep.dist
    if dist is None:
        return "unknown", ""
    path = getattr(dist, "_path", None)
    return _distribution(str(path)) if path is not None else (dist.metadata["Name"], dist.metadata["Version"])


@functools.lru_cache(maxsize=256)
def _distribution(path: str) -> tuple[str, str]:
    metadata = PathDistribution(Path(path)).metadata
    return metadata["Name"] or "unknown", metadata["Version"] or ""


def _unknown_hooks(manager: pluggy.PluginManager, plugin: str) -> list[str]:
    """The hooks ``plugin`` implements that no hook specification declares."""
    return sorted(name for name, caller in vars(manager.hook).items()
                  if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
                  and any(impl.plugin_name == plugin for impl in caller.get_hookimpls()))


def _stage(staged: dict[tuple[str, str], Component], kind: str, plugin: Plugin,
           formerly: dict[tuple[str, str], tuple[Component, str]], name: str, factory: Callable | str, *,
           renamed_from: dict[str, str] | None = None) -> None:
    """The ``register`` callback handed to a plugin's hook. ``renamed_from`` maps the component's old
    names to the zoo release that renamed them (timm's register_model_deprecations): they keep working,
    with a warning, for one minor version after it (zoo.deprecation)."""
    if not (is_name(name) or isinstance(factory, LibraryModel) and is_library_name(name)):
        raise ZooError(f"{kind} name {name!r} is not kebab-case, like 'multi-head-attention' (a library's "
                       "architectures may keep its snake_case names)")
    if isinstance(factory, str) and not TARGET.fullmatch(factory):
        raise ZooError(f"{kind} '{name}': factory string {factory!r} is not 'module:attribute'")
    if not isinstance(factory, str) and not callable(factory):
        raise ZooError(f"{kind} '{name}': factory {factory!r} is neither callable nor 'module:attribute'")
    if (kind, name) in staged:
        raise ZooError(f"{kind} '{name}' is registered twice")
    staged[kind, name] = Component(name, kind, factory, plugin)
    for old, since in (renamed_from or {}).items():
        if not (isinstance(old, str) and is_name(old) and isinstance(since, str) and re.fullmatch(r"\d+\.\d+", since)):
            raise ZooError(f"{kind} '{name}': renamed_from maps old kebab-case names to the zoo release that "
                           f"renamed them ('0.2'), got {old!r}: {since!r}")
        formerly[kind, old] = (staged[kind, name], since)


def clash_message(group: list[Component]) -> str:
    first = group[0]
    owners = " and ".join(str(c.plugin) for c in group)
    builtin = [c for c in group if c.plugin.dist == BUILTIN]
    if len(builtin) == 1:
        others = " or ".join(f"'{c.qualified_name}'" for c in group if c is not builtin[0])
        return (f"{first.kind} '{first.name}' is registered by {owners}: '{first.name}' means zoo's own "
                f"'{builtin[0].qualified_name}'; name the other {others}")
    choices = " or ".join(f"'{c.qualified_name}'" for c in group)
    return f"{first.kind} '{first.name}' is registered by {owners}: pick one with {choices}"


@functools.cache
def default_registry() -> Registry:
    """The registry of the installed plugins, created on first use."""
    return Registry.from_environment()
