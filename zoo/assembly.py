"""Building a recipe's components through the registry; every failure is located in the recipe."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.recipe import COMPONENT, KeyPath, Recipe, RecipeError
from zoo.registry import Component, Registry, with_article
from zoo.schema import Settings
from zoo.signature import ParamError

MODEL_KINDS = ("model", "layer")


@dataclass
class Assembler:
    """Builds component nodes of one recipe and remembers which node each module came from."""

    recipe: Recipe
    registry: Registry
    origins: dict[int, KeyPath] = field(default_factory=dict)

    def build(self, path: KeyPath, kinds: tuple[str, ...], supplied: dict[str, object] | None = None,
              supplied_from: dict[str, KeyPath] | None = None) -> object:
        """Build the component node at ``path``; ``supplied`` parameters come from zoo, not the recipe."""
        supplied, supplied_from = supplied or {}, supplied_from or {}
        node = self.recipe.get(path)
        name, params = (node, {}) if isinstance(node, str) else (node[COMPONENT], _params(node))
        name_path = path if isinstance(node, str) else (*path, COMPONENT)
        component = self._lookup(name, kinds, name_path)
        for key in params:
            if key in supplied:
                where = f" (set it with {supplied_from[key][-1]})" if key in supplied_from else ""
                raise self.recipe.error((*path, key), f"'{key}' is supplied by zoo{where}; remove it here")
        built = {key: self._value(value, (*path, key)) for key, value in params.items()}
        values = {**built, **supplied}
        try:
            component.check(values)
        except ParamError as exc:
            where = (*path, exc.param) if exc.param in params else supplied_from.get(exc.param, path)
            raise self.recipe.error(where, str(exc)) from None
        try:
            result = component.target(**values)
        except ZooError as exc:
            raise self.recipe.error(path, str(exc)) from None
        except Exception as exc:
            raise self.recipe.error(
                path, f"{component.kind} '{component.name}' failed to build: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, nn.Module):
            self.origins.setdefault(id(result), path)
        return result

    def _value(self, value: object, path: KeyPath) -> object:
        if isinstance(value, dict) and COMPONENT in value:
            return self.build(path, MODEL_KINDS)
        if isinstance(value, list) and any(isinstance(v, dict) and COMPONENT in v for v in value):
            return [self._value(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def _lookup(self, name: object, kinds: tuple[str, ...], path: KeyPath) -> Component:
        if not isinstance(name, str):
            raise self.recipe.error(path, f"a component name is a string, got {name!r}")
        for kind in kinds:
            try:
                return self.registry.get(name, kind)
            except ZooError:
                continue
        try:
            found = self.registry.get(name)
        except ZooError as exc:
            raise self.recipe.error(path, str(exc).replace("unknown component", f"unknown {' or '.join(kinds)}")) from None
        raise self.recipe.error(path, f"'{name}' is {with_article(found.kind)}; here {with_article(' or '.join(kinds))} is expected")


def _params(node: dict) -> dict:
    return {k: v for k, v in node.items() if k != COMPONENT}


@dataclass
class Parts:
    """The built pieces of a recipe, ready to train."""

    model: nn.Module
    train_data: object
    eval_data: object | None
    loss: nn.Module
    device: torch.device
    assembler: Assembler


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu, as the reference notebook does."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device '{name}' requested but CUDA is not available; use device: auto or cpu")
    return device


def assemble(recipe: Recipe, settings: Settings, registry: Registry, device: str | None = None) -> Parts:
    """Model (seeded), datasets and loss of a validated recipe, on ``device`` (default: the recipe's)."""
    assembler = Assembler(recipe, registry)
    device = resolve_device(device or settings.train.device)
    torch.manual_seed(settings.train.seed)
    model = assembler.build(("model",), MODEL_KINDS)
    if not isinstance(model, nn.Module):
        raise recipe.error(("model",), f"builds a {type(model).__name__}, not a torch.nn.Module")
    train_data = _dataset(assembler, "train_split", settings.data.train_split)
    eval_data = None
    if settings.data.eval_split is not None:
        eval_data = _dataset(assembler, "eval_split", settings.data.eval_split)
    loss = assembler.build(("train", "loss"), ("loss",))
    return Parts(model.to(device), train_data, eval_data, loss, device, assembler)


def recorded(recipe_data: dict, source: Path, registry: Registry) -> Assembler:
    """An assembler over the data and train sections a weights file records (``model.zoo_meta["recipe"]``);
    errors name ``source``."""
    return Assembler(Recipe({"data": recipe_data["data"], "train": recipe_data["train"]}, {}, source), registry)


def _dataset(assembler: Assembler, role: str, split: str) -> object:
    path = ("data", "dataset")
    component = assembler._lookup(_name(assembler.recipe.get(path)), ("dataset",), path)
    if "split" not in {p.name for p in component.params}:
        raise assembler.recipe.error(
            ("data", role), f"dataset '{component.name}' has no 'split' parameter; set data.eval_split: null"
        )
    data = assembler.build(path, ("dataset",), {"split": split}, {"split": ("data", role)})
    if len(data) == 0:
        raise assembler.recipe.error(("data", role), f"split '{split}' is empty")
    return data


def _name(node: object) -> object:
    return node if isinstance(node, str) else node.get(COMPONENT)


def build_optimizer(parts: Parts, total_steps: int) -> tuple[torch.optim.Optimizer, object | None]:
    """The optimizer over the model's parameters, and the LR schedule if the recipe has one."""
    assembler = parts.assembler
    optimizer = assembler.build(("train", "optimizer"), ("optimizer",), {"params": parts.model.parameters()})
    schedule = None
    if assembler.recipe.get(("train", "schedule")) is not None:
        schedule = assembler.build(
            ("train", "schedule"), ("scheduler",), {"optimizer": optimizer, "total_steps": total_steps}
        )
    return optimizer, schedule


def first_batch(data: object, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``size`` samples, as the trainer would batch them."""
    count = min(size, len(data))
    if hasattr(data, "batch"):
        return data.batch(torch.arange(count))
    samples = [data[i] for i in range(count)]
    return torch.stack([s[0] for s in samples]), torch.stack([torch.as_tensor(s[1]) for s in samples])


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    shape: str
    params: int


def trace(parts: Parts, batch_size: int) -> tuple[list[Row], int]:
    """Run one batch through the model and the loss; the leaf layers with their output shapes.

    A layer that fails is reported at the recipe node it was built from.
    """
    model, recipe = parts.model, parts.assembler.recipe
    x, y = first_batch(parts.train_data, batch_size)
    x, y = x.to(parts.device), y.to(parts.device)
    names = {id(m): n for n, m in model.named_modules()}
    rows: list[Row] = []
    stack: list[tuple[nn.Module, tuple]] = []

    def before(module: nn.Module, args: tuple) -> None:
        stack.append((module, tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))))

    def after(module: nn.Module, args: tuple, out: object) -> None:
        stack.pop()
        if not any(True for _ in module.children()):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            own = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append(Row(names.get(id(module), "?") or "(model)", type(module).__name__, str(shape), own))

    hooks = [h for m in model.modules() for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except ZooError as exc:
        raise _located(recipe, parts.assembler, stack, names, str(exc)) from None
    except Exception as exc:
        raise _located(recipe, parts.assembler, stack, names, f"{type(exc).__name__}: {exc}") from exc
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. torch's warning that mismatched shapes broadcast
            parts.loss(out, y)
    except Exception as exc:
        raise recipe.error(
            ("train", "loss"),
            f"cannot compare the model's output {tuple(out.shape)} with the targets {tuple(y.shape)}: {exc}",
        ) from None
    return rows, sum(p.numel() for p in model.parameters())


def _located(recipe: Recipe, assembler: Assembler, stack: list, names: dict, message: str) -> RecipeError:
    for module, shapes in reversed(stack):
        if id(module) in assembler.origins:
            inner = stack[-1][0]
            where = names.get(id(inner)) or type(inner).__name__
            got = ", ".join(str(s) for s in stack[-1][1])
            return recipe.error(
                assembler.origins[id(module)],
                f"the model fails on a batch: {where} ({type(inner).__name__}) got input {got}: {message}",
            )
    return recipe.error(("model",), f"the model fails on a batch: {message}")
