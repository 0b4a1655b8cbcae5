"""Building a recipe's component nodes through the registry; every failure is located in the recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import Dataset

from zoo.assembly.transforms import Transform
from zoo.errors import ZooError
from zoo.files import RunPath, run_path
from zoo.recipe.nodes import Node
from zoo.recipe.parse import KeyPath, Recipe
from zoo.registry import Component, Registry
from zoo.registry.signature import ParamError
from zoo.text import clip, with_article
from zoo.typed import takes

MODEL_KINDS = ("model", "layer")

# What zoo passes to a factory, by kind and parameter name, when the factory takes it (a recipe that
# sets one of these is refused). docs/plugins.md lists them.
SUPPLIED = {
    "dataset": {"split": "the split to read: data.train_split for training, data.eval_split for evaluation"},
    "optimizer": {"params": "the model's trainable parameters (or the groups of train.param_groups)"},
    "scheduler": {"optimizer": "the optimizer", "total_steps": "optimizer steps in the whole run"},
    "metric": {"num_classes": "the model's last output dimension",
               "classes": "the data's class names (None when it declares none)"},
    "callback": {"recorded": "the names of the numbers each epoch records (train_loss, test_accuracy ...)",
                 "classes": "the data's class names (None when it declares none)"},
}


@dataclass(frozen=True)
class Pins:
    """What each component name meant when a weights file was saved (kind -> name -> plugin:name), and
    the plugins' distributions then (plugin -> "distribution version"): a file's recipe rebuilt, or
    trained again, with the components it was made of, whatever plugins were installed since."""

    components: dict[str, dict[str, str]] = field(default_factory=dict)
    saved_with: dict[str, str] = field(default_factory=dict)


@dataclass
class Assembler:
    """Builds the component nodes of a recipe and remembers which node each module came from."""

    registry: Registry
    pins: Pins = field(default_factory=Pins)
    origins: dict[int, Node] = field(default_factory=dict)
    handed: dict[str, object] = field(default_factory=dict)  # the handed parameters some node took
    resolved: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> plugin:name looked up

    def build(self, node: Node, kinds: tuple[str, ...], supplied: dict[str, object] | None = None,
              supplied_from: dict[str, KeyPath] | None = None, handed: dict[str, object] | None = None) -> object:
        """Build ``node`` as one of ``kinds``; ``supplied`` are the values zoo passes (see SUPPLIED): those
        the factory takes, ``supplied_from`` saying which keys set them. ``handed`` values go to every
        node below of the same kind that takes them and does not set them (a dataset wrapper hands
        the split on to the datasets it wraps)."""
        supplied_from, handed = supplied_from or {}, handed or {}
        component = self.lookup(node, kinds)
        names = {p.name for p in component.params}
        for key in node.params:
            if key in (supplied or {}):
                where = f" (set it with {supplied_from[key][-1]})" if key in supplied_from else ""
                raise node.error(f"'{key}' is supplied by zoo{where}; remove it here", key)
        supplied = {k: v for k, v in (supplied or {}).items() if k in names}
        taken = {k: v for k, v in handed.items() if k in names and k not in node.params}
        self.handed.update(taken)
        supplied.update(taken)
        values = {key: self._value(value, (*node.path, key), node.recipe, component, handed)
                  for key, value in node.params.items()}
        values.update(supplied)
        try:
            component.check(values)
        except ParamError as exc:
            if exc.param in node.params or exc.param not in supplied_from:
                raise node.error(str(exc), exc.param if exc.param in node.params else None) from None
            raise node.recipe.error(supplied_from[exc.param], str(exc)) from None
        except ZooError as exc:  # the factory cannot be imported
            raise node.recipe.error(node.name_path, str(exc)) from None
        try:
            result = component.target(**values)
        except ZooError as exc:
            raise node.error(str(exc)) from None
        except Exception as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")  # not torch's C++ backtrace
            raise node.error(f"{component.kind} '{component.name}' failed to build: {type(exc).__name__}: {first}") from exc
        if isinstance(result, nn.Module):
            self.origins.setdefault(id(result), node)
        return result

    def _value(self, value: object, path: KeyPath, recipe: Recipe, component: Component,
               handed: dict[str, object]) -> object:
        """A parameter's value with its nodes built: a bare name is a node where the parameter's type
        hint takes components (a Dataset, a Transform, a Module); a RunPath is checked."""
        hint = component.hints.get(_param_of(path))
        kinds = node_kinds(hint)
        if isinstance(value, str) and kinds:
            value = Node(value, {}, path, value, recipe)
        if isinstance(value, Node):
            kinds = kinds or MODEL_KINDS
            return self.build(value, kinds, handed=handed if kinds == ("dataset",) else None)
        if isinstance(value, list):
            return [self._value(v, (*path, i), recipe, component, handed) for i, v in enumerate(value)]
        if isinstance(value, str) and takes(hint, RunPath):
            try:
                return run_path(value)
            except ZooError as exc:
                raise recipe.error(path, str(exc)) from None
        return value

    def lookup(self, node: Node, kinds: tuple[str, ...]) -> Component:
        """The registered component ``node`` names, of one of ``kinds``; errors at the node's name."""
        name = node.name
        if not isinstance(name, str):
            raise node.recipe.error(node.name_path, f"a component name is a string, got {clip(repr(name))}")
        pins = self.pins.components
        pinned = next((pins[k][name] for k in kinds if name in pins.get(k, {})), None)
        for kind in kinds:
            try:
                component = self.registry.get(pinned or name, kind)
            except ZooError:
                continue
            self.resolved.setdefault(kind, {})[name] = component.qualified_name
            return component
        missing = self._missing_plugins(pinned)
        if missing:
            raise node.recipe.error(node.name_path, missing)
        try:
            found = self.registry.get(name)
        except ZooError as exc:
            message = str(exc).replace("unknown component", f"unknown {' or '.join(kinds)}")
            raise node.recipe.error(node.name_path, message) from None
        raise node.recipe.error(
            node.name_path, f"'{name}' is {with_article(found.kind)}; here {with_article(' or '.join(kinds))} is expected")

    def _missing_plugins(self, pinned: str | None) -> str | None:
        """Why a component of saved weights is not here: the plugin it came from (or, for weights
        saved before zoo recorded that, the plugins they were saved with) is not installed. What the
        file claims is quoted, never made into a command to run: a stranger's file names any package."""
        loaded = {p.name for p in self.registry.plugins if p.status == "loaded"}
        absent = {p: shipped for p, shipped in self.pins.saved_with.items() if p not in loaded}
        if pinned:
            plugin, _, bare = pinned.partition(":")
            if plugin in loaded:
                return None
            shipped = absent.get(plugin, "")
            saved = f" ({clip(shipped)} when these weights were saved, the file says)" if shipped else ""
            return (f"'{bare}' comes from plugin '{plugin}'{saved}, which is not installed: install the distribution "
                    f"that provides it, from a source you trust")
        if not absent:
            return None
        listed = ", ".join(f"'{p}' ({clip(shipped)})" for p, shipped in sorted(absent.items()))
        return (f"unknown component; these weights were saved with plugins that are not installed now: {listed}, "
                "the file says: install the distributions that provide them, from a source you trust")

    def model(self, node: Node) -> nn.Module:
        model = self.build(node, MODEL_KINDS)
        if not isinstance(model, nn.Module):
            raise node.error(f"builds a {type(model).__name__}, not a torch.nn.Module")
        return model


def _param_of(path: KeyPath) -> str | None:
    """The parameter a list item's path belongs to: ('model', 'layers', 2) -> 'layers'."""
    return next((part for part in reversed(path) if isinstance(part, str)), None)


def node_kinds(hint: object) -> tuple[str, ...] | None:
    """The kinds of component a parameter of type ``hint`` takes (through Optional, list and tuple):
    datasets for a Dataset, transforms for a Transform, layers and models for a Module; None for
    plain values."""
    for kinds, wanted in ((("dataset",), Dataset), (("transform",), Transform), (MODEL_KINDS, nn.Module)):
        if takes(hint, wanted):
            return kinds
    return None


class NoInit(TorchFunctionMode):
    """A context in which modules are built without their random initialisation, for weights that
    follow (a weights file, a checkpoint): ``torch.nn.init``, the in-place random fills and any other
    in-place change of a parameter (a library's own initialisers: timm's ``trunc_normal_`` is
    ``uniform_``, then ``erfinv_``, ``mul_`` ...) are skipped."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func in _RANDOM_FILLS or (
                args and isinstance(args[0], nn.Parameter) and _changes_values(getattr(func, "__name__", ""))):
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _changes_values(name: str) -> bool:
    """Whether a tensor method of this name changes the tensor's values in place (``erfinv_``, not
    ``__bool__`` or ``requires_grad_``)."""
    return name.endswith("_") and not name.startswith("__") and name not in ("requires_grad_", "share_memory_")


class Bounded(TorchFunctionMode):
    """A context in which no tensor larger than ``limit`` bytes is created (by the factory functions a
    module's constructor uses: empty, zeros, arange ...): a model node read from a file cannot make
    zoo allocate what its size claims (a ``max_len`` of 10**12) before anything checks it."""

    def __init__(self, limit: int, what: str):
        super().__init__()
        self.limit, self.what = limit, what

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        count = _elements(func, args, kwargs)
        if count is not None:
            dtype = kwargs.get("dtype") or torch.get_default_dtype()
            size = count * (dtype.itemsize if isinstance(dtype, torch.dtype) else 8)
            if size > self.limit:
                raise ZooError(f"{self.what} would make a tensor of {count:,} elements ({size / 1e9:.1f} GB), more "
                               f"than the {self.limit / 1e9:.1f} GB bound (ZOO_MAX_BUILD_BYTES raises it)")
        return func(*args, **kwargs)


def _elements(func, args: tuple, kwargs: dict) -> int | None:
    """How many elements a call of a tensor factory asks for; None for any other function."""
    try:
        if func in (torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full):
            size = kwargs.get("size", args[0] if args else ())
            if func is not torch.full and args and isinstance(args[0], int):
                size = [a for a in args if isinstance(a, int)]
            return math.prod(int(n) for n in size)
        if func is torch.arange:
            numbers = [a for a in args if isinstance(a, (int, float))]
            start, end, step = (0, numbers[0], 1) if len(numbers) == 1 else (*numbers[:2], numbers[2] if len(numbers) > 2 else 1)
            return max(0, math.ceil((end - start) / step))
        if func is torch.linspace:
            return int(kwargs.get("steps", args[2] if len(args) > 2 else 0))
    except (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None
    return None


_RANDOM_FILLS = {torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                 torch.Tensor.exponential_, torch.Tensor.cauchy_, torch.Tensor.log_normal_, torch.Tensor.geometric_}
