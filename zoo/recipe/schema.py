"""The recipe schema, declared once: every key of every section with its check, default and doc.

The validator, the keys ``--set`` may add (:func:`key_paths`) and the key tables of docs/recipes.md
(:func:`reference`) are all derived from the dataclasses below. :func:`validate` runs once per run;
after it nothing reads the raw recipe: component nodes are typed :class:`Node` values that know their
key path, their component name and their parameters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import ClassVar

from zoo.errors import ZooError
from zoo.names import is_name
from zoo.recipe.migrations import deprecated_keys, migrate, renamed
from zoo.recipe.parse import COMPONENT, KeyPath, Recipe, RecipeError, format_path, load, parse_path, raise_all
from zoo.text import did_you_mean

# The version of this schema. Weights files record it with their recipe; a change that renames or
# moves a key bumps it and adds a migration (zoo.recipe.migrations), so older files keep loading.
VERSION = 1

DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")
# train.precision -> the dtype forward passes autocast to (see zoo.assembly.precision)
PRECISIONS = {"32": None, "bf16": "bfloat16", "16-mixed": "float16"}
PRECISION_ALIASES = {32: "32", "32-true": "32", "bf16-mixed": "bf16"}  # also accepted: Lightning's spellings
WEIGHTS_DTYPES = ("float32", "bfloat16", "float16")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Check:
    """What a key's value must be: a test, and the words for it in errors and in the reference."""

    test: Callable[[object], bool]
    what: str
    optional: bool = False  # null is also accepted

    def problem(self, value: object) -> str | None:
        if value is None and self.optional:
            return None
        return None if self.test(value) else f"expects {self.what}, got {value!r}"

    def or_null(self) -> Check:
        return Check(self.test, f"{self.what} or null", optional=True)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_node(v: object) -> bool:
    return isinstance(v, str) or isinstance(v, dict) and isinstance(v.get(COMPONENT), str)


positive_int = Check(lambda v: _integer(v) and v > 0, "a positive integer")
natural = Check(lambda v: _integer(v) and v >= 0, "a non-negative integer")
seed_value = Check(lambda v: _integer(v) and 0 <= v <= MAX_SEED, "an integer from 0 to 2**63 - 1")
boolean = Check(lambda v: isinstance(v, bool), "true or false")
text = Check(lambda v: isinstance(v, str), "a string")
component = Check(_is_node, f"a component: a name, or a mapping with '{COMPONENT}: NAME' and its parameters")


globs = Check(lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
              "a list of glob patterns over parameter names")
GROUP_OPTIONS = ("lr", "weight_decay", "momentum", "betas", "eps")


def _group(v: object) -> bool:
    if not isinstance(v, dict) or "params" not in v or not set(v) <= {"params", *GROUP_OPTIONS}:
        return False
    params = v["params"]
    return (isinstance(params, str) or isinstance(params, list) and all(isinstance(p, str) for p in params)) and all(
        _number(x) or isinstance(x, list) and all(map(_number, x)) for k, x in v.items() if k != "params")


def components(kind: str) -> Check:
    """A list of component nodes of ``kind``."""
    return Check(lambda v: isinstance(v, list) and all(_is_node(c) for c in v), f"a list of {kind} components")


@dataclass(frozen=True)
class SameAs:
    """A default that is the value of another key of the same section."""

    key: str


def key(check: Check, default: object = MISSING, doc: str = "", *, node: bool = False,
        convert: Callable[[object], object] | None = None) -> object:
    """Declare a recipe key: its check, its default (none: required), a one-line doc. ``node``: the value
    is a component node; ``convert`` turns the checked value into the settings' type."""
    return field(default=default, metadata={"check": check, "doc": doc, "node": node, "convert": convert})


@dataclass(frozen=True, eq=False)
class Node:
    """A component node of a recipe: the registered name it asks for, its parameters (which may hold
    nodes), and where it was written."""

    name: object  # a str once validated; assembly reports anything else at name_path
    params: dict[str, object]
    path: KeyPath
    raw: object = field(repr=False)  # the node as written: a bare name or a mapping
    recipe: Recipe = field(repr=False)

    @property
    def name_path(self) -> KeyPath:
        return self.path if isinstance(self.raw, str) else (*self.path, COMPONENT)

    def error(self, message: str, param: str | None = None) -> RecipeError:
        """An error located at this node, or at one of its parameters."""
        return self.recipe.error(self.path if param is None else (*self.path, param), message)


def node(value: object, path: KeyPath, recipe: Recipe) -> Node:
    """The typed node of a component node's plain data at ``path`` in ``recipe``."""
    if isinstance(value, str):
        return Node(value, {}, path, value, recipe)
    params = {k: _param(v, (*path, k), recipe) for k, v in value.items() if k != COMPONENT}
    return Node(value[COMPONENT], params, path, value, recipe)


def _param(value: object, path: KeyPath, recipe: Recipe) -> object:
    if isinstance(value, dict) and COMPONENT in value:
        return node(value, path, recipe)
    if isinstance(value, list) and any(isinstance(v, dict) and COMPONENT in v for v in value):
        return [_param(v, (*path, i), recipe) for i, v in enumerate(value)]
    return value


def recorded(data: dict, version: int, source: Path) -> Settings:
    """The settings of the recipe a weights file records, written with schema ``version`` (migrated
    to this one); errors name ``source``."""
    try:
        data = migrate(data, version, VERSION)
    except ZooError as exc:
        raise ZooError(f"{source}: its recipe: {exc}") from None
    try:
        return validate(Recipe(data, {}, source))
    except RecipeError as exc:  # a file is one thing to refuse: one line, however many its problems
        problems = [f"{format_path(e.path) or 'the recipe'}: {e.reason}" for e in getattr(exc, "errors", [exc])]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ZooError(f"{source}: its recorded recipe does not validate: {'; '.join(problems[:3])}{more}") from None


def model_node_of(recipe: Recipe) -> Node | None:
    """The model node of a recipe whose other keys may not validate; None when it is malformed."""
    value = recipe.get(("model",))
    return node(value, ("model",), recipe) if _is_node(value) else None


def model_node(value: object, source: Path) -> Node:
    """The model node a weights file records; errors name ``source``."""
    recipe = Recipe({"model": value}, {}, source)
    if not _is_node(value):
        raise recipe.error(("model",), f"the recorded model is not {component.what}")
    return node(value, ("model",), recipe)


def transform_nodes(values: Sequence[object], source: Path) -> tuple[Node, ...]:
    """The evaluation transforms' nodes a weights file records; errors name ``source``."""
    recipe = Recipe({"transform": list(values)}, {}, source)
    for index, value in enumerate(values):
        if not _is_node(value):
            raise recipe.error(("transform", index), f"the recorded transform is not {component.what}")
    return tuple(node(value, ("transform", index), recipe) for index, value in enumerate(values))


@dataclass(frozen=True, kw_only=True)
class Data:
    """The ``data`` section: which dataset, and how it is batched and split."""

    SECTION: ClassVar[str] = "data"
    dataset: Node = key(component, doc="a dataset component; zoo supplies its `split`", node=True)
    batch_size: int = key(positive_int, 64, "training batch size")
    eval_batch_size: int = key(positive_int.or_null(), SameAs("batch_size"), "evaluation batch size")
    shuffle: bool = key(boolean, True, "a seeded permutation per epoch")
    train_split: str = key(text, "train", "the split trained on")
    eval_split: str | None = key(text.or_null(), "test", "the split evaluated after each epoch; null for none")
    workers: int = key(natural, 0, "DataLoader worker processes for a dataset read sample by sample (one "
                       "without `tensors()`); 0 reads in the training process. Same batches, same order")
    prefetch: int = key(positive_int, 2, "batches each worker prepares ahead (with `workers` > 0)")
    transform: tuple[Node, ...] = key(
        components("transform"), (),
        "transform components applied in order to each training batch on the device (`zoo list --kind transform`)",
        node=True)
    eval_transform: tuple[Node, ...] = key(
        components("transform"), SameAs("transform"),
        "transforms applied to each evaluation batch; random augmentations in it leave batches unchanged", node=True)

    def path(self, name: str) -> KeyPath:
        """The key path of this section's key ``name``."""
        return (self.SECTION, name)


@dataclass(frozen=True, kw_only=True)
class Train:
    """The ``train`` section: how long, on what, with which optimizer, loss and schedule."""

    SECTION: ClassVar[str] = "train"
    epochs: int = key(positive_int, doc="passes over the training split")
    seed: int = key(seed_value, 0, "weights init, shuffles and dropout")
    device: str = key(Check(lambda v: isinstance(v, str) and bool(DEVICE.fullmatch(v)), "auto, cpu, mps, cuda or cuda:N"),
                      "auto", "auto picks cuda, then mps, then cpu")
    threads: int | None = key(positive_int.or_null(), None,
                              "CPU threads each process computes with (torch.set_num_threads); null: torch's own "
                              "choice for one process, the cores shared out under torchrun")
    compile: bool = key(boolean, False, "torch.compile the model (on this CPU it made the MLP ~2.7x slower)")
    backend: str = key(Check(lambda v: v in ("auto", "gloo", "nccl", "mpi"), "auto, gloo, nccl or mpi"), "auto",
                       "torch.distributed backend under torchrun; auto: nccl on CUDA, else gloo")
    strategy: Node = key(component, "ddp", "how the processes of a torchrun job share the training: ddp (each holds "
                         "the whole model) or fsdp (each holds a shard of every block; docs/distributed.md)",
                         node=True)
    checkpoint_every: int | None = key(positive_int.or_null(), None,
                                       "optimizer steps between checkpoints within an epoch (null: at each epoch's "
                                       "end only); bounds the work a crash or an elastic restart loses")
    optimizer: Node = key(component, doc="an optimizer component; zoo supplies `params`", node=True)
    loss: Node = key(component, doc="a loss component, called as loss(prediction, target)", node=True)
    schedule: Node | None = key(component.or_null(), None,
                                "an LR schedule component; zoo supplies `optimizer` and `total_steps`", node=True)
    grad_clip: float | None = key(Check(lambda v: _number(v) and v > 0, "a positive number").or_null(), None,
                                  "max global L2 norm of the gradients")
    log_every: int = key(positive_int, 50, "batches between host syncs (progress bar and loss)")
    precision: str = key(
        Check(lambda v: isinstance(v, (int, str)) and PRECISION_ALIASES.get(v, v) in PRECISIONS, "32, bf16 or 16-mixed"),
        "32",
        "32: float32; bf16: bfloat16 autocast (CPU, CUDA); 16-mixed: float16 autocast with a gradient scaler "
        "(CUDA). Parameters stay float32", convert=lambda v: PRECISION_ALIASES.get(v, v))
    accumulate: int = key(positive_int, 1, "batches whose gradients add up before each optimizer step (an "
                          "effective batch of accumulate x batch_size)")
    weights_dtype: str = key(Check(lambda v: v in WEIGHTS_DTYPES, "float32, bfloat16 or float16"), "float32",
                             "dtype of the saved weights file")
    init: str | None = key(text.or_null(), None,
                           "weights to start from: a published model, a local build (NAME@latest, NAME@3) or a "
                           "weights file; "
                           "tensors are copied where names and shapes match, and anything else is an error unless "
                           "`init_skip` allows it")
    new_head: bool = key(boolean, False, "fine-tune to new classes: the model's head (its last layer with parameters, "
                         "or the one its `zoo_head` names) keeps its own initialisation instead of `init`'s "
                         "weights, whatever its shape (as timm's num_classes=); without `init` every layer does")
    init_skip: tuple[str, ...] = key(globs, (), "parameters `init` need not fill: missing from the file, "
                                     "unexpected, or of another shape", convert=tuple)
    freeze: tuple[str, ...] = key(globs, (), "parameters kept fixed during training", convert=tuple)
    param_groups: tuple[dict, ...] = key(
        Check(lambda v: isinstance(v, list) and all(map(_group, v)),
              f"a list of mappings {{params: GLOB or [GLOBS], and any of {', '.join(GROUP_OPTIONS)}}}"), (),
        "optimizer settings of some parameters (the first group that matches takes one); the rest keep the "
        "optimizer's", convert=tuple)
    callbacks: tuple[Node, ...] = key(
        components("callback"), (),
        "callback components that receive the run's lifecycle events, in this order (`zoo list --kind callback`)",
        node=True)

    def path(self, name: str) -> KeyPath:
        return (self.SECTION, name)


# The sections of a recipe, by key. A new section is one dataclass here and one field of Settings.
SECTIONS: dict[str, type] = {"data": Data, "train": Train}


def _section_field(doc: str) -> object:
    return field(metadata={"section": True, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A validated recipe: every key typed, every default filled in."""

    name: str = key(Check(is_name, "a kebab-case name like mnist-mlp (at most 100 characters)"),
                    doc="kebab-case; the store keeps the builds under this name")
    description: str = key(text, "", "free text")
    model: Node = key(component, doc="the model: a model or layer component", node=True)
    data: Data = _section_field("the data section")
    train: Train = _section_field("the train section")
    metrics: tuple[Node, ...] = key(
        components("metric"),
        (), "metric components evaluation reports besides the loss (`zoo list --kind metric`); zoo supplies "
            "`num_classes`", node=True)
    sweep: dict | None = key(
        Check(lambda v: isinstance(v, dict) and bool(v) and all(isinstance(x, list) and x for x in v.values()),
              "a mapping of key path -> non-empty list of values").or_null(),
        None, "one run per combination of the listed values (a grid search: `zoo build`, resumable)")
    search: Search | None = key(
        Check(lambda v: isinstance(v, dict) and bool(v), "a mapping: trials, metric, space ...").or_null(),
        None, "a hyperparameter search on Optuna (`zoo search`): trials, metric, direction, sampler, pruner, "
              "space (docs/search.md)")
    recipe: Recipe = field(repr=False, compare=False)  # where every value came from

    def path(self, name: str) -> KeyPath:
        """The key path of the top-level key ``name``."""
        return (name,)

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return self.recipe.error(path, message)


def _keys(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if "check" in f.metadata or "section" in f.metadata}


def key_paths() -> set[KeyPath]:
    """Every key path the schema declares (what ``--set`` may add to a recipe)."""
    paths = {(name,) for name in _keys(Settings)}
    return paths | {(section, name) for section, cls in SECTIONS.items() for name in _keys(cls)}


def read(path: str | Path, overrides: Sequence[str] = ()) -> Settings:
    """Load a recipe file with ``--set`` overrides and validate it."""
    return validate(load(path, overrides, known=key_paths()))


def validate(recipe: Recipe) -> Settings:
    """Check every key of ``recipe`` against the schema; raise every bad one (RecipeError or RecipeErrors)."""
    problems: list[RecipeError] = []
    deprecated_keys(recipe)
    values = _section(recipe, Settings, (), problems)
    if values.get("sweep"):
        _check_paths(recipe, "sweep", values["sweep"], problems)
    if values.get("search"):
        values["search"] = _search(recipe, values["search"], problems)
    raise_all(problems)
    return Settings(**values, recipe=recipe)


def _check_paths(recipe: Recipe, section: str, paths: dict, problems: list[RecipeError]) -> None:
    """Each key of ``section`` (sweep, search.space) is a key path the recipe has, or one the schema declares."""
    known = key_paths()
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
    return [path for key, value in data.items() for path in [(*prefix, key), *_paths(value, (*prefix, key))]]


SAMPLERS = ("tpe", "random", "grid", "cmaes")  # Optuna's samplers a search may name
PRUNERS = ("median", "hyperband", "none")
MAXIMIZED = ("accuracy", "f1", "precision", "recall", "auroc", "auc", "iou", "r2", "score")  # metric name parts


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


@dataclass(frozen=True)
class Search:
    """A validated ``search`` section."""

    trials: int
    metric: str  # a recorded metric: test_accuracy, val_loss ...
    direction: str  # "maximize" or "minimize"
    sampler: str
    pruner: str
    space: tuple[Param, ...]


def direction_of(metric: str) -> str | None:
    """'maximize' for an accuracy-like metric, 'minimize' for a loss or error, else None."""
    parts = re.split(r"[_-]", metric.lower())
    if parts[-1] in ("loss", "error", "mse", "mae", "perplexity"):
        return "minimize"
    return "maximize" if any(part in MAXIMIZED for part in parts) else None


def _search(recipe: Recipe, section: dict, problems: list[RecipeError]) -> Search | None:
    """The ``search`` section, typed; each problem is added to ``problems`` at its key."""
    before = len(problems)
    fields = {"trials", "metric", "direction", "sampler", "pruner", "space"}

    def bad(key: str, message: str) -> None:
        problems.append(recipe.error(("search", key), message))

    for name in section:
        if name not in fields:
            bad(name, f"unknown key '{name}'.{did_you_mean(str(name), fields)} search takes: {', '.join(sorted(fields))}")
    trials, metric = section.get("trials"), section.get("metric")
    if not (_integer(trials) and 1 <= trials <= 100_000):
        bad("trials", f"expects a whole number of trials from 1 to 100,000, got {trials!r}")
    if not (isinstance(metric, str) and re.fullmatch(r"[a-z][a-z0-9_]*", metric)):
        bad("metric", f"expects a recorded metric such as test_accuracy or val_loss, got {metric!r}")
    direction = section.get("direction") or (direction_of(metric) if isinstance(metric, str) else None)
    if direction not in ("maximize", "minimize"):
        bad("direction" if "direction" in section else "metric",
            f"say direction: maximize or minimize (it is inferred only for accuracy-like metrics and losses), "
            f"got {section.get('direction')!r}")
    sampler, pruner = section.get("sampler", "tpe"), section.get("pruner", "median")
    if sampler not in SAMPLERS:
        bad("sampler", f"expects one of {', '.join(SAMPLERS)}, got {sampler!r}.{did_you_mean(str(sampler), SAMPLERS)}")
    if pruner not in PRUNERS:
        bad("pruner", f"expects one of {', '.join(PRUNERS)}, got {pruner!r}.{did_you_mean(str(pruner), PRUNERS)}")
    space = section.get("space")
    params = []
    if not (isinstance(space, dict) and space):
        bad("space", "expects a mapping of key path -> values: a list of choices, {log: [low, high]}, "
                     "{float: [low, high]} or {int: [low, high], step: N}")
    else:
        _check_paths(recipe, "search.space", space, problems)
        params = [_space_param(recipe, str(path), spec, problems) for path, spec in space.items()]
    if sampler == "grid" and any(p is not None and p.kind != "choice" for p in params):
        bad("sampler", "a grid search takes lists of choices only; give each space key a list")
    if len(problems) > before:
        return None
    return Search(trials, metric, direction, sampler, pruner, tuple(params))


def _space_param(recipe: Recipe, path: str, spec: object, problems: list[RecipeError]) -> Param | None:
    where = ("search", "space", path)
    form = ("a list of choices, {log: [low, high]}, {float: [low, high], step: S} or {int: [low, high], step: N}")
    if isinstance(spec, list):
        if not spec:
            problems.append(recipe.error(where, "expects at least one choice"))
            return None
        return Param(path, "choice", choices=tuple(spec))
    kinds = [k for k in ("log", "float", "int") if isinstance(spec, dict) and k in spec]
    if len(kinds) != 1 or set(spec) - {kinds[0], "step"}:
        problems.append(recipe.error(where, f"expects {form}, got {spec!r}"))
        return None
    kind = kinds[0]
    bounds, step = spec[kind], spec.get("step")
    whole = kind == "int"
    valid = (isinstance(bounds, list) and len(bounds) == 2 and all(_integer(b) if whole else _number(b) for b in bounds)
             and bounds[0] < bounds[1] and (kind != "log" or bounds[0] > 0))
    if not valid:
        what = "two whole numbers, low < high" if whole else "two numbers, low < high" + (", both > 0" if kind == "log" else "")
        problems.append(recipe.error((*where, kind), f"expects [low, high]: {what}; got {bounds!r}"))
        return None
    if step is not None and (kind == "log" or not (_integer(step) if whole else _number(step)) or step <= 0):
        problems.append(recipe.error((*where, "step"), f"expects a positive {'whole ' if whole else ''}number"
                                                       f"{' (log ranges take none)' if kind == 'log' else ''}, got {step!r}"))
        return None
    return Param(path, kind, bounds[0], bounds[1], step)


def _section(recipe: Recipe, cls: type, prefix: KeyPath, problems: list[RecipeError]) -> dict:
    """The section's typed values; each problem found is added to ``problems`` and the key skipped."""
    given = recipe.get(prefix) if prefix else recipe.data
    fields = _keys(cls)
    for name in given:
        if name not in fields:
            where = format_path(prefix) or "A recipe"
            moved = renamed((*prefix, name))
            hint = (f" Schema version {moved.version} renamed it {moved.new}." if moved else did_you_mean(name, fields))
            problems.append(recipe.error((*prefix, name), f"unknown key '{name}'.{hint} "
                                                          f"{where} takes: {', '.join(fields)}"))
    result: dict[str, object] = {}
    for name, f in fields.items():
        path = (*prefix, name)
        if name not in given:
            if "section" in f.metadata or f.default is MISSING:
                problems.append(recipe.error(prefix, f"missing required key '{name}'"))
            else:
                default = f.default
                result[name] = node(default, path, recipe) if f.metadata["node"] and isinstance(default, str) else default
            continue
        value = given[name]
        if "section" in f.metadata:
            if not isinstance(value, dict):
                problems.append(recipe.error(path, f"expects a mapping, got {value!r}"))
                continue
            before = len(problems)
            section = _section(recipe, SECTIONS[name], path, problems)
            if len(problems) == before:
                result[name] = SECTIONS[name](**section)
            continue
        problem = f.metadata["check"].problem(value)
        if problem:
            problems.append(recipe.error(path, problem))
        elif f.metadata["node"] and isinstance(value, list):
            result[name] = tuple(node(v, (*path, i), recipe) for i, v in enumerate(value))
        elif f.metadata["node"] and value is not None:
            result[name] = node(value, path, recipe)
        else:
            result[name] = value if f.metadata["convert"] is None else f.metadata["convert"](value)
    for name, value in result.items():
        default = fields[name].default
        if isinstance(value, SameAs) or value is None and isinstance(default, SameAs):
            result[name] = result.get((value if isinstance(value, SameAs) else default).key)
    return result


def reference() -> str:
    """The key tables of docs/recipes.md, one per section, as Markdown."""
    parts = []
    for title, cls in (("top level", Settings), *SECTIONS.items()):
        rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
        for name, f in _keys(cls).items():
            if "section" in f.metadata:
                rows.append(f"| `{name}` | a mapping | *required* | {f.metadata['doc']}: see below |")
                continue
            default = f.default
            shown = ("*required*" if default is MISSING else f"same as `{default.key}`" if isinstance(default, SameAs)
                     else f"`{_yaml(default)}`")
            rows.append(f"| `{name}` | {f.metadata['check'].what} | {shown} | {f.metadata['doc']} |")
        parts.append(f"### {title if title == 'top level' else f'`{title}`'}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


START, END = "<!-- schema:start -->\n", "<!-- schema:end -->"


def splice(document: str, tables: str) -> str:
    """``document`` with the block between its schema markers replaced by ``tables``."""
    if START not in document or END not in document:
        raise ZooError(f"no '{START.strip()}' ... '{END}' block to replace")
    head, rest = document.split(START, 1)
    return head + START + tables + END + rest.split(END, 1)[1]


def _yaml(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[]" if not value else str(list(value))
    return str(value) if value != "" else '""'

