"""The keys a recipe may have, their types and defaults, checked with the location of each value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from zoo.recipe import COMPONENT, KeyPath, Recipe

REQUIRED = object()
METRICS = ("accuracy",)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _component(v: object) -> str | None:
    if isinstance(v, str):
        return None
    if not isinstance(v, dict) or not isinstance(v.get(COMPONENT), str):
        return f"expects a component: a mapping with '{COMPONENT}: NAME' and its parameters"
    return None


def _typed(kind: type, test: Callable[[object], bool] = lambda v: True, what: str = "") -> Callable:
    def check(v: object) -> str | None:
        ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
        if kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return None if ok and test(v) else f"expects {what or kind.__name__}, got {v!r}"
    return check


def _optional(check: Callable) -> Callable:
    return lambda v: None if v is None else check(v)


positive_int = _typed(int, lambda v: v > 0, "a positive integer")
SECTIONS: dict[str, dict[str, tuple[Callable, object]]] = {
    "": {
        "name": (_typed(str, NAME.match, "a kebab-case name like mnist-mlp"), REQUIRED),
        "description": (_typed(str), ""),
        "model": (_component, REQUIRED),
        "data": (_typed(dict, what="a mapping"), REQUIRED),
        "train": (_typed(dict, what="a mapping"), REQUIRED),
        "metrics": (_typed(list, lambda v: all(m in METRICS for m in v), f"a list of {', '.join(METRICS)}"), []),
        "sweep": (_optional(_typed(dict, what="a mapping of key path -> list of values")), None),
    },
    "data": {
        "dataset": (_component, REQUIRED),
        "batch_size": (positive_int, 64),
        "eval_batch_size": (_optional(positive_int), None),
        "shuffle": (_typed(bool), True),
        "train_split": (_typed(str), "train"),
        "eval_split": (_optional(_typed(str)), "test"),
    },
    "train": {
        "epochs": (positive_int, REQUIRED),
        "seed": (_typed(int, lambda v: v >= 0, "a non-negative integer"), 0),
        "device": (_typed(str, DEVICE.match, "auto, cpu, mps, cuda or cuda:N"), "auto"),
        "compile": (_typed(bool), False),
        "backend": (_typed(str, lambda v: v in ("auto", "gloo", "nccl", "mpi"), "auto, gloo, nccl or mpi"), "auto"),
        "optimizer": (_component, REQUIRED),
        "loss": (_component, REQUIRED),
        "schedule": (_optional(_component), None),
        "grad_clip": (_optional(_typed(float, lambda v: v > 0, "a positive number")), None),
        "log_every": (positive_int, 50),
    },
}


@dataclass(frozen=True)
class Data:
    dataset: dict | str
    batch_size: int
    eval_batch_size: int | None
    shuffle: bool
    train_split: str
    eval_split: str | None


@dataclass(frozen=True)
class Train:
    epochs: int
    seed: int
    device: str
    compile: bool
    backend: str
    optimizer: dict | str
    loss: dict | str
    schedule: dict | str | None
    grad_clip: float | None
    log_every: int


@dataclass(frozen=True)
class Settings:
    """A validated recipe, with every default filled in."""

    name: str
    description: str
    model: dict | str
    data: Data
    train: Train
    metrics: tuple[str, ...]
    sweep: dict | None


def validate(recipe: Recipe) -> Settings:
    """Check every key of ``recipe`` against the schema; raise RecipeError at the first bad one."""
    values = {section: _section(recipe, section) for section in SECTIONS}
    top = values[""]
    return Settings(
        name=top["name"],
        description=top["description"],
        model=top["model"],
        data=Data(**values["data"]),
        train=Train(**values["train"]),
        metrics=tuple(top["metrics"]),
        sweep=top["sweep"],
    )


def _section(recipe: Recipe, section: str) -> dict:
    prefix: KeyPath = (section,) if section else ()
    given = recipe.get(prefix) if section else recipe.data
    fields = SECTIONS[section]
    for key in given:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            known = ", ".join(fields)
            raise recipe.error((*prefix, key), f"unknown key '{key}'.{hint} {section or 'A recipe'} takes: {known}")
    result = {}
    for key, (check, default) in fields.items():
        path = (*prefix, key)
        if key not in given:
            if default is REQUIRED:
                raise recipe.error(prefix, f"missing required key '{key}'")
            result[key] = list(default) if isinstance(default, list) else default
            continue
        problem = check(given[key])
        if problem:
            raise recipe.error(path, problem)
        result[key] = given[key]
    return result
