"""The ``search`` section (a hyperparameter search on Optuna: zoo.training.search runs it) and the
key paths a search's space or a sweep sets: declared like every other section, its space read into
:class:`Param` values, each problem located at its key."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar, Literal

from zoo.errors import ZooError
from zoo.recipe.keys import key
from zoo.recipe.parse import COMPONENT, KeyPath, Recipe, RecipeError, format_path, parse_path
from zoo.text import did_you_mean
from zoo.typed import Is, Pattern, Range, Words

SAMPLERS = ("tpe", "random", "grid", "cmaes")  # Optuna's samplers a search may name
PRUNERS = ("median", "hyperband", "none")
MAXIMIZED = ("accuracy", "f1", "precision", "recall", "auroc", "auc", "iou", "r2", "score")  # metric name parts
FORMS = "a list of choices, {log: [low, high]}, {float: [low, high], step: S} or {int: [low, high], step: N}"


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a search's space: the key path it sets and the values it may take."""

    path: str
    kind: str  # "choice", "float", "log" (a float on a log scale) or "int"
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    choices: tuple = ()

    def extremes(self) -> tuple[object, object]:
        """Its smallest and largest values (the first and last choice)."""
        return (self.choices[0], self.choices[-1]) if self.kind == "choice" else (self.low, self.high)


def _space(value: object, path: KeyPath, recipe: Recipe, problems: list[RecipeError]) -> tuple[Param, ...]:
    """The space's parameters; each malformed one is added to ``problems`` at its key (the schema checks
    that each key path is one the recipe has or the schema declares)."""
    params = [_param(recipe, str(name), spec, (*path, name), problems) for name, spec in value.items()]
    return tuple(p for p in params if p is not None)


def _param(recipe: Recipe, name: str, spec: object, where: KeyPath, problems: list[RecipeError]) -> Param | None:
    if isinstance(spec, list):
        if not spec:
            problems.append(recipe.error(where, "expects at least one choice"))
            return None
        return Param(name, "choice", choices=tuple(spec))
    kinds = [k for k in ("log", "float", "int") if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1 or set(spec) - {kinds[0], "step"}:
        problems.append(recipe.error(where, f"expects {FORMS}, got {spec!r}"))
        return None
    kind = kinds[0]
    bounds, step = spec[kind], spec.get("step")
    whole = kind == "int"
    number = int if whole else float
    valid = (isinstance(bounds, list) and len(bounds) == 2 and all(_fits(b, number) for b in bounds)
             and bounds[0] < bounds[1] and (kind != "log" or bounds[0] > 0))
    if not valid:
        what = "two whole numbers, low < high" if whole else "two numbers, low < high" + (", both > 0" if kind == "log" else "")
        problems.append(recipe.error((*where, kind), f"expects [low, high]: {what}; got {bounds!r}"))
        return None
    if step is not None and (kind == "log" or not _fits(step, number) or step <= 0):
        problems.append(recipe.error((*where, "step"), f"expects a positive {'whole ' if whole else ''}number"
                                                       f"{' (log ranges take none)' if kind == 'log' else ''}, got {step!r}"))
        return None
    return Param(name, kind, bounds[0], bounds[1], step)


def _fits(value: object, number: type) -> bool:
    return isinstance(value, (int, float) if number is float else int) and not isinstance(value, bool)


SPACE = Is(lambda v: isinstance(v, dict) and bool(v), f"a mapping of key path -> values: {FORMS}")


@dataclass(frozen=True, kw_only=True)
class Search:
    """The ``search`` section: trials of an Optuna study over a space of key paths."""

    SECTION: ClassVar[str] = "search"
    trials: Annotated[int, Range(ge=1, le=100_000), Words("a whole number of trials from 1 to 100,000")] = key(
        doc="trials that complete or are pruned")
    metric: Annotated[str, Pattern(r"[a-z][a-z0-9_]*"), Words("a recorded metric such as test_accuracy or val_loss")] \
        = key(doc="the recorded number the search optimizes")
    direction: Literal["maximize", "minimize"] | None = key(None, "null: maximize an accuracy-like metric, minimize "
                                                                  "a loss or error")
    sampler: Literal[SAMPLERS] = key("tpe", "Optuna's sampler (grid takes lists of choices only)")
    pruner: Literal[PRUNERS] = key("median", "stops trials whose epochs fall behind (through the epoch-end event)")
    space: Annotated[tuple[Param, ...], SPACE] = key(
        doc="what each trial sets: key path -> its values", read=_space)


def direction_of(metric: str) -> str | None:
    """'maximize' for an accuracy-like metric, 'minimize' for a loss or error, else None."""
    parts = re.split(r"[_-]", metric.lower())
    if parts[-1] in ("loss", "error", "mse", "mae", "perplexity"):
        return "minimize"
    return "maximize" if any(part in MAXIMIZED for part in parts) else None


def finish(search: Search, recipe: Recipe, problems: list[RecipeError]) -> Search | None:
    """The search with its direction inferred and a grid's space made of choices only; None after
    adding its problems."""
    before = len(problems)
    direction = search.direction or direction_of(search.metric)
    if direction is None:
        problems.append(recipe.error(("search", "metric"), "say direction: maximize or minimize (it is inferred only "
                                                           "for accuracy-like metrics and losses), got None"))
    if search.sampler == "grid" and any(p.kind != "choice" for p in search.space):
        problems.append(recipe.error(("search", "sampler"), "a grid search takes lists of choices only; give each "
                                                            "space key a list"))
    return replace(search, direction=direction) if len(problems) == before else None


def check_paths(recipe: Recipe, section: str, paths: dict, known: set[KeyPath], problems: list[RecipeError]) -> None:
    """Each key of ``section`` (sweep, search.space) is a key path the recipe has, or one the schema declares."""
    prefix = tuple(section.split("."))
    for text in paths:
        where = (*prefix, text)
        try:
            path = parse_path(str(text))
        except ZooError as exc:
            problems.append(recipe.error(where, str(exc)))
            continue
        parent = recipe.get(path[:-1])
        exists = isinstance(parent, dict) and path[-1] in parent or (
            isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent))
        if not exists and path not in known and not (isinstance(parent, dict) and COMPONENT in parent):
            hint = did_you_mean(format_path(path), [format_path(p) for p in [*known, *_paths(recipe.data)]])
            problems.append(recipe.error(where, f"the {section} sets {format_path(path)}, which the recipe does not "
                                                f"have and the schema does not declare.{hint}"))


def _paths(data: object, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every key path of a recipe's mappings (what a sweep or a search space may set)."""
    if not isinstance(data, dict) or len(prefix) > 8:
        return []
    return [path for name, value in data.items() for path in [(*prefix, name), *_paths(value, (*prefix, name))]]
