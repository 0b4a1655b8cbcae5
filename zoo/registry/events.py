"""The lifecycle events of one run, through pluggy: one manager per run holds the loaded plugins'
hooks and the recipe's callbacks, a callback registered like a plugin (its methods named after run
events are its hook implementations, as pytest takes its unmarked ``pytest_`` functions). One
dispatch path serves both; callbacks are registered last, so they hear each event first, in the
order the recipe lists them, and a plugin hook marked ``trylast`` (checkpoints) hears it after all.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from zoo.errors import ZooError
from zoo.registry import hookspecs
from zoo.text import did_you_mean

if TYPE_CHECKING:
    from zoo.registry.plugins import Plugin


class HookError(ZooError):
    """A plugin's lifecycle hook raised; the message names the plugin, the hook and its signature."""


class CallbackError(ZooError):
    """A callback raised; the message names it, where the recipe lists it, and the event."""


@dataclass(frozen=True, eq=False)
class Callback:
    """A built callback, its component name and where the recipe lists it (``file:line: key path``)."""

    name: str
    where: str
    target: object
    state_key: str = ""  # what a checkpoint keeps its state under (default: its name), as Lightning's

    def __post_init__(self):
        if not self.state_key:
            object.__setattr__(self, "state_key", self.name)

    def problem(self) -> str | None:
        """Why this object cannot be a callback (methods that are no run event, or take arguments the
        event does not have), or None."""
        methods = {}
        for attribute in dir(self.target):
            if not attribute.startswith("zoo_"):
                continue
            if attribute in hookspecs.EVENTS and attribute not in hookspecs.RUN_EVENTS:
                return (f"callback '{self.name}' has a method '{attribute}', which is not an event of its run "
                        "(a plugin's hook can hear it)")
            if attribute not in hookspecs.RUN_EVENTS:
                return (f"callback '{self.name}' has a method '{attribute}', which is no lifecycle event."
                        f"{did_you_mean(attribute, hookspecs.RUN_EVENTS)}")
            method = getattr(self.target, attribute)
            if callable(method):
                methods[attribute] = method
        if not methods:
            return (f"callback '{self.name}' has no method named after a run event "
                    f"({', '.join(hookspecs.RUN_EVENTS)})")
        for event, method in methods.items():
            extra = [p for p in inspect.signature(method).parameters if p not in hookspecs.arguments(event)]
            if extra:
                return (f"callback '{self.name}': {event} takes '{extra[0]}', which the event does not pass "
                        f"(it passes {', '.join(hookspecs.arguments(event))})")
        return None


class _Manager(pluggy.PluginManager):
    """A plugin manager that also takes a callback's unmarked ``zoo_`` methods as hook implementations."""

    def __init__(self, callbacks: Iterable[object]):
        super().__init__("zoo")
        self._callbacks = {id(target) for target in callbacks}

    def parse_hookimpl_opts(self, plugin: object, name: str):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and id(plugin) in self._callbacks and name in hookspecs.RUN_EVENTS:
            return {"wrapper": False, "hookwrapper": False, "optionalhook": False, "tryfirst": False,
                    "trylast": False, "specname": None}
        return opts


class Events:
    """The events of one run: ``events.emit("zoo_epoch_end", run=..., epoch=..., metrics=...)`` calls
    each callback's method, then every plugin's hook."""

    def __init__(self, plugins: Sequence[tuple[Plugin, object]], callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)
        manager = _Manager(c.target for c in self.callbacks)
        manager.add_hookspecs(hookspecs)
        for plugin, hooks in plugins:
            manager.register(hooks, name=plugin.name)
        whose: dict[str, str | Callback] = {plugin.name: f"plugin {plugin}" for plugin, _ in plugins}
        for index, callback in reversed(list(enumerate(self.callbacks))):  # the last registered is called first
            name = f"callback {index}: {callback.name}"
            manager.register(callback.target, name=name)
            whose[name] = callback
        for event in hookspecs.EVENTS:
            for impl in getattr(manager.hook, event).get_hookimpls():
                if not (impl.wrapper or impl.hookwrapper):
                    impl.function = _naming(impl.function, whose[impl.plugin_name], event)
        self._hook = manager.hook

    def emit(self, event: str, **arguments: object) -> None:
        getattr(self._hook, event)(**arguments)

    def implemented(self, event: str) -> bool:
        """Whether anyone listens to ``event`` (so a caller can skip preparing its arguments)."""
        return bool(getattr(self._hook, event).get_hookimpls())


def _naming(function: Callable, who: str | Callback, event: str) -> Callable:
    """``function`` raising HookError or CallbackError that names who implements ``event``."""

    @functools.wraps(function)
    def call(*args: object) -> object:
        try:
            return function(*args)
        except (HookError, CallbackError):
            raise
        except Exception as exc:
            if isinstance(who, Callback):
                raise CallbackError(f"{who.where}: callback '{who.name}' raised in {event}: "
                                    f"{type(exc).__name__}: {exc}") from exc
            signature = f"{event}({', '.join(hookspecs.arguments(event))})"
            raise HookError(f"{who}: hook {signature} raised {type(exc).__name__}: {exc}") from exc

    return call
