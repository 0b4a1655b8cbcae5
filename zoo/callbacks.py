"""Callbacks: components a recipe names in ``train.callbacks`` that hear the run's lifecycle events
(before the plugins' hooks), with state that checkpoints keep."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from zoo import hookspecs
from zoo.errors import ZooError
from zoo.text import did_you_mean


class CallbackError(ZooError):
    """A callback raised; the message names it, where the recipe lists it, and the event."""


@dataclass(eq=False)
class Callback:
    """A built callback, its component name and where the recipe lists it (``file:line: key path``)."""

    name: str
    where: str
    target: object

    def __post_init__(self):
        self.methods = {event: getattr(self.target, event) for event in hookspecs.EVENTS
                        if callable(getattr(self.target, event, None))}
        self.wants = {event: set(inspect.signature(method).parameters) for event, method in self.methods.items()}

    def problem(self) -> str | None:
        """Why this object cannot be a callback, or None."""
        for attribute in dir(self.target):
            if attribute.startswith("zoo_") and attribute not in hookspecs.EVENTS:
                return (f"callback '{self.name}' has a method '{attribute}', which is no lifecycle event."
                        f"{did_you_mean(attribute, hookspecs.EVENTS)}")
        if not self.methods:
            return f"callback '{self.name}' has no method named after a lifecycle event ({', '.join(hookspecs.EVENTS)})"
        return None

    def call(self, event: str, arguments: dict[str, object]) -> None:
        """Call the callback's method for ``event`` (if any) with the arguments it names."""
        if event not in self.methods:
            return
        try:
            self.methods[event](**{k: v for k, v in arguments.items() if k in self.wants[event]})
        except Exception as exc:
            raise CallbackError(f"{self.where}: callback '{self.name}' raised in {event}: "
                                f"{type(exc).__name__}: {exc}") from exc

    def state(self) -> object:
        """What a checkpoint keeps of it (None without ``state_dict``)."""
        return self.target.state_dict() if callable(getattr(self.target, "state_dict", None)) else None

    def restore(self, state: object) -> None:
        if state is not None and callable(getattr(self.target, "load_state_dict", None)):
            self.target.load_state_dict(state)
