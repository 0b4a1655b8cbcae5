"""The recipe schema, declared once: every key of every section, as a dataclass field whose type hint
says what it takes (bounds in ``Annotated``, read by zoo.typed) and whose :func:`key` gives its
default and one-line doc.

The validator, the keys ``--set`` may add (:func:`key_paths`) and the key tables of docs/recipes.md
(zoo.recipe.reference) all come from these dataclasses. :func:`validate` runs once per run; after it
nothing reads the raw recipe: component nodes are typed :class:`Node` values that know their key
path, their component name and their parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from zoo.errors import ZooError
from zoo.names import is_name
from zoo.recipe import keys as sections
from zoo.recipe.keys import Component, SameAs, components, key, read_section
from zoo.recipe.migrations import deprecated_keys, migrate
from zoo.recipe.nodes import Node
from zoo.recipe.parse import KeyPath, Recipe, RecipeError, format_path, load, raise_all
from zoo.recipe.space import Search, check_paths, finish
from zoo.typed import Is, Pattern, Range, Words

# The version of this schema. Weights files record it with their recipe; a change that renames or
# moves a key bumps it and adds a migration (zoo.recipe.migrations), so older files keep loading.
VERSION = 1

# train.precision -> the dtype forward passes autocast to (see zoo.assembly.precision)
PRECISIONS = {"32": None, "bf16": "bfloat16", "16-mixed": "float16"}
PRECISION_ALIASES = {32: "32", "32-true": "32", "bf16-mixed": "bf16"}  # also accepted: Lightning's spellings
MAX_SEED = 2**63 - 1
GROUP_OPTIONS = ("lr", "weight_decay", "momentum", "betas", "eps")

Positive = Annotated[int, Range(ge=1)]
Globs = Annotated[tuple[str, ...], Is(lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
                                      "a list of glob patterns over parameter names")]


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _group(v: object) -> bool:
    if not isinstance(v, dict) or "params" not in v or not set(v) <= {"params", *GROUP_OPTIONS}:
        return False
    params = v["params"]
    return (isinstance(params, str) or isinstance(params, list) and all(isinstance(p, str) for p in params)) and all(
        _number(x) or isinstance(x, list) and all(map(_number, x)) for k, x in v.items() if k != "params")


# (rules with code are module constants: an annotation is evaluated in its class's namespace)
PRECISION = Is(lambda v: isinstance(v, (int, str)) and PRECISION_ALIASES.get(v, v) in PRECISIONS,
               "32, bf16 or 16-mixed")
GROUPS = Is(lambda v: isinstance(v, list) and all(map(_group, v)),
            f"a list of mappings {{params: GLOB or [GLOBS], and any of {', '.join(GROUP_OPTIONS)}}}")
SWEEP = Is(lambda v: isinstance(v, dict) and bool(v) and all(isinstance(x, list) and x for x in v.values()),
           "a mapping of key path -> non-empty list of values")


@dataclass(frozen=True, kw_only=True)
class Data:
    """The ``data`` section: which dataset, and how it is batched and split."""

    SECTION: ClassVar[str] = "data"
    dataset: Component = key(doc="a dataset component; zoo supplies its `split`")
    batch_size: Positive = key(64, "training batch size")
    eval_batch_size: Positive | None = key(SameAs("batch_size"), "evaluation batch size")
    shuffle: bool = key(True, "a seeded permutation per epoch")
    train_split: str = key("train", "the split trained on")
    eval_split: str | None = key("test", "the split evaluated after each epoch; null for none")
    workers: Annotated[int, Range(ge=0)] = key(0, "DataLoader worker processes for a dataset read sample by sample "
                                                  "(one without `tensors()`); 0 reads in the training process. Same "
                                                  "batches, same order")
    prefetch: Positive = key(2, "batches each worker prepares ahead (with `workers` > 0)")
    transform: Annotated[tuple[Node, ...], components("transform")] = key(
        (), "transform components applied in order to each training batch on the device (`zoo list --kind transform`)")
    eval_transform: Annotated[tuple[Node, ...], components("transform")] = key(
        SameAs("transform"),
        "transforms applied to each evaluation batch; random augmentations in it leave batches unchanged")

    def path(self, name: str) -> KeyPath:
        """The key path of this section's key ``name``."""
        return (self.SECTION, name)


@dataclass(frozen=True, kw_only=True)
class Train:
    """The ``train`` section: how long, on what, with which optimizer, loss and schedule."""

    SECTION: ClassVar[str] = "train"
    epochs: Positive = key(doc="passes over the training split")
    seed: Annotated[int, Range(ge=0, le=MAX_SEED), Words("an integer from 0 to 2**63 - 1")] = key(
        0, "weights init, shuffles and dropout")
    device: Annotated[str, Pattern(r"auto|cpu|mps|cuda(:\d+)?"), Words("auto, cpu, mps, cuda or cuda:N")] = key(
        "auto", "auto picks cuda, then mps, then cpu")
    threads: Positive | None = key(None, "CPU threads each process computes with (torch.set_num_threads); null: "
                                         "torch's own choice for one process, the cores shared out under torchrun")
    compile: bool = key(False, "torch.compile the model (on this CPU it made the MLP ~2.7x slower)")
    channels_last: bool = key(False, "train a convolutional model in the channels-last memory format (its weights "
                                     "and 4-d inputs): resnet18 took 12% less time per step on this CPU with bf16")
    backend: Literal["auto", "gloo", "nccl", "mpi"] = key(
        "auto", "torch.distributed backend under torchrun; auto: nccl on CUDA, else gloo")
    strategy: Component = key("ddp", "how the processes of a torchrun job share the training: ddp (each holds the "
                                     "whole model) or fsdp (each holds a shard of every block; docs/distributed.md)")
    checkpoint_every: Positive | None = key(None, "optimizer steps between checkpoints within an epoch (null: at "
                                                  "each epoch's end only); bounds the work a crash or an elastic "
                                                  "restart loses")
    optimizer: Component = key(doc="an optimizer component; zoo supplies `params`")
    loss: Component = key(doc="a loss component, called as loss(prediction, target)")
    schedule: Component | None = key(None, "an LR schedule component; zoo supplies `optimizer` and `total_steps`")
    grad_clip: Annotated[float, Range(gt=0)] | None = key(None, "max global L2 norm of the gradients")
    log_every: Positive = key(50, "batches between host syncs (progress bar and loss)")
    precision: Annotated[str, PRECISION] = key(
        "32", "32: float32; bf16: bfloat16 autocast (CPU, CUDA); 16-mixed: float16 autocast with a gradient scaler "
              "(CUDA). Parameters stay float32", convert=lambda v: PRECISION_ALIASES.get(v, v))
    accumulate: Positive = key(1, "batches whose gradients add up before each optimizer step (an effective batch "
                                  "of accumulate x batch_size)")
    weights_dtype: Literal["float32", "bfloat16", "float16"] = key("float32", "dtype of the saved weights file")
    init: str | None = key(None, "weights to start from: a published model, a local build (NAME@latest, NAME@3) or "
                                 "a weights file; tensors are copied where names and shapes match, and anything else "
                                 "is an error unless `init_skip` allows it")
    new_head: bool = key(False, "fine-tune to new classes: the model's head (its last layer with parameters, or the "
                                "one its `zoo_head` names) keeps its own initialisation instead of `init`'s weights, "
                                "whatever its shape (as timm's num_classes=); without `init` every layer does")
    init_skip: Globs = key((), "parameters `init` need not fill: missing from the file, unexpected, or of another "
                               "shape")
    freeze: Globs = key((), "parameters kept fixed during training")
    param_groups: Annotated[tuple[dict, ...], GROUPS] = key(
        (), "optimizer settings of some parameters (the first group that matches takes one); the rest keep the "
            "optimizer's")
    callbacks: Annotated[tuple[Node, ...], components("callback")] = key(
        (), "callback components that receive the run's lifecycle events, in this order (`zoo list --kind callback`)")

    def path(self, name: str) -> KeyPath:
        return (self.SECTION, name)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A validated recipe: every key typed, every default filled in."""

    SECTION: ClassVar[str] = ""
    name: Annotated[str, Is(is_name, "a kebab-case name like mnist-mlp (at most 100 characters)")] = key(
        doc="kebab-case; the store keeps the builds under this name")
    description: str = key("", "free text")
    model: Component = key(doc="the model: a model or layer component")
    data: Data = key(doc="the data section")
    train: Train = key(doc="the train section")
    metrics: Annotated[tuple[Node, ...], components("metric")] = key(
        (), "metric components evaluation reports besides the loss (`zoo list --kind metric`); zoo supplies "
            "`num_classes`")
    sweep: Annotated[dict, SWEEP] | None = key(
        None, "one run per combination of the listed values (a grid search: `zoo build`, resumable)")
    search: Search | None = key(None, "a hyperparameter search on Optuna (`zoo search`, docs/search.md)")
    recipe: Recipe = field(repr=False, compare=False)  # where every value came from

    def path(self, name: str) -> KeyPath:
        """The key path of the top-level key ``name``."""
        return (name,)

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return self.recipe.error(path, message)


# The sections of a recipe below the top level, by key: what the reference documents.
SECTIONS: dict[str, type] = {"data": Data, "train": Train, "search": Search}


def key_paths() -> set[KeyPath]:
    """Every key path the schema declares (what ``--set`` may add to a recipe)."""
    return {(name,) for name in sections.keys(Settings)} | {
        (section, *rest) for section, cls in SECTIONS.items() for rest in sections.key_paths(cls)}


def read(path: str | Path, overrides: Sequence[str] = ()) -> Settings:
    """Load a recipe file with ``--set`` overrides and validate it."""
    return validate(load(path, overrides, known=key_paths()))


def validate(recipe: Recipe) -> Settings:
    """Check every key of ``recipe`` against the schema; raise every bad one (RecipeError or RecipeErrors)."""
    problems: list[RecipeError] = []
    deprecated_keys(recipe)
    values = read_section(recipe, Settings, (), problems, SECTIONS)
    for section, paths in (("sweep", values.get("sweep")), ("search.space", recipe.get(("search", "space")))):
        if isinstance(paths, dict):  # a space's paths are checked even when other search keys are wrong
            check_paths(recipe, section, paths, key_paths(), problems)
    if values.get("search"):
        values["search"] = finish(values["search"], recipe, problems)
    raise_all(problems)
    return Settings(**values, recipe=recipe)


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
