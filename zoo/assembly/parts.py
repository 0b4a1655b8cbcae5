"""A recipe's parts: every component built once, then checked together on one batch. What comes out,
:class:`Parts`, is all the training loop receives besides its run folder and events."""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from zoo.assembly.assembler import Assembler, Bounded, NoInit, Pins
from zoo.assembly.distributed import Context
from zoo.assembly.finetune import Initial, InitReport, parameter_groups, start
from zoo.assembly.precision import Precision, precision
from zoo.assembly.strategy import Strategy
from zoo.assembly.transforms import Pipeline, Step, TransformError, batch_generator
from zoo.errors import ZooError
from zoo.recipe.parse import Recipe, RecipeError, format_path, raise_all
from zoo.recipe.nodes import Node, model_node_of
from zoo.recipe.schema import Data, Settings
from zoo.registry import Registry
from zoo.registry.events import Callback

MAX_BUILD_BYTES = 16 << 30  # of one tensor a recipe's model may make (ZOO_MAX_BUILD_BYTES sets another bound)


@dataclass(frozen=True)
class Row:
    """A leaf layer of the model as the one checked batch met it."""

    name: str
    kind: str
    shape: str
    params: int


@dataclass(eq=False)
class Parts:
    """The built pieces of a recipe, checked together on one batch, ready to train."""

    settings: Settings
    model: nn.Module
    train_data: object
    eval_data: object | None
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object | None
    metrics: dict[str, object]  # by record name (the component's name, snake_case)
    transform: Pipeline | None
    eval_transform: Pipeline | None
    callbacks: list[Callback]
    precision: Precision
    strategy: Strategy
    device: torch.device
    steps: int  # batches per epoch on each process
    components: dict[str, dict[str, str]]  # kind -> name -> plugin:name, as looked up
    origins: dict[int, Node] = field(repr=False)  # id of a built module -> the node it came from
    layers: list[Row] = field(default_factory=list)  # the leaf layers, as the checked batch met them
    init: InitReport | None = None  # what train.init took from its weights file

    @property
    def classes(self) -> list[str] | None:
        """The class names the data declares, if it does."""
        return getattr(self.eval_data or self.train_data, "info", {}).get("classes")

    @property
    def total_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ZooError(f"device '{name}' requested but this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ZooError(f"device '{name}' requested but MPS (Apple GPUs) is not available; use device: auto or cpu")
    return device


def steps(samples: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch on each of ``world`` processes (the data is shared out across them)."""
    return math.ceil(math.ceil(samples / world) / batch_size)


def assemble(settings: Settings, registry: Registry, *, device: str | None = None, context: Context = Context(),
             initial: Initial | None = None, weights_follow: bool = False, pins: Pins = Pins()) -> Parts:
    """Build every part of a validated recipe on ``device`` (default: ``train.device``) for this process
    of a torchrun job (``context``), start from ``initial`` (the weights ``train.init`` names), shard the
    model as ``train.strategy`` says, and check the parts together on one batch. Independent errors are
    all reported (RecipeErrors); with ``weights_follow`` (a resume) the model is built without random
    initialisation; ``pins`` say what component names meant to the weights file a reproduction trains
    again."""
    assembler = Assembler(registry, pins)
    data, train = settings.data, settings.train
    problems: list[RecipeError] = []

    def attempt(build: Callable[[], object]) -> object:
        try:
            return build()
        except RecipeError as exc:
            if str(exc) not in map(str, problems):  # the train and eval splits share one dataset node
                problems.append(exc)
            return None

    where = attempt(lambda: _located(settings, "device", lambda: resolve_device(device or train.device)))
    numerics = where and attempt(lambda: _located(settings, "precision", lambda: precision(train.precision, where)))
    torch.manual_seed(train.seed)
    limit = int(os.environ.get("ZOO_MAX_BUILD_BYTES") or MAX_BUILD_BYTES)
    with Bounded(limit, "the model"), NoInit() if weights_follow else contextlib.nullcontext():
        model = attempt(lambda: assembler.model(settings.model))
    train_data = attempt(lambda: dataset(assembler, data, data.train_split, "train_split"))
    eval_data = None if data.eval_split is None else attempt(lambda: dataset(assembler, data, data.eval_split))
    loss = attempt(lambda: assembler.build(train.loss, ("loss",)))
    strategy = attempt(lambda: assembler.build(train.strategy, ("strategy",)))
    transform = attempt(lambda: transforms(assembler, data.transform))
    eval_transform = attempt(lambda: transforms(assembler, data.eval_transform))
    classes = getattr(eval_data or train_data, "info", {}).get("classes")
    supplied = {"recorded": record_names(settings, assembler), "classes": classes}
    names = [node.name for node in train.callbacks]
    callbacks = [attempt(lambda node=node: _callback(assembler, node, supplied, names.count(node.name) > 1))
                 for node in train.callbacks]
    raise_all(problems)
    model = model.to(where)
    init = start(model, settings, initial)
    numerics = strategy.shard(model, context, numerics)
    optimizer = assembler.build(train.optimizer, ("optimizer",),
                                {"params": parameter_groups(model, settings) or model.parameters()})
    per_epoch = steps(len(train_data), data.batch_size, context.world)
    schedule = None
    if train.schedule is not None:
        total = math.ceil(per_epoch / train.accumulate) * train.epochs
        schedule = assembler.build(train.schedule, ("scheduler",), {"optimizer": optimizer, "total_steps": total})
    parts = Parts(settings, model, train_data, eval_data, loss, optimizer, schedule, {}, transform, eval_transform,
                  callbacks, numerics, strategy, where, per_epoch, assembler.resolved, assembler.origins, init=init)
    _check_batch(parts, assembler)
    return parts


def model_problems(recipe: Recipe, registry: Registry) -> list[RecipeError]:
    """The errors of building the model node of a recipe the schema refused for other reasons (so a
    recipe's independent mistakes are all reported at once); none when the node itself is malformed."""
    model = model_node_of(recipe)
    if model is None:
        return []
    try:
        with NoInit(), Bounded(int(os.environ.get("ZOO_MAX_BUILD_BYTES") or MAX_BUILD_BYTES), "the model"):
            Assembler(registry).model(model)
    except RecipeError as exc:
        return list(getattr(exc, "errors", [exc]))
    return []


def _located(settings: Settings, key: str, build: Callable[[], object]) -> object:
    try:
        return build()
    except ZooError as exc:
        raise settings.error(settings.train.path(key), str(exc)) from None


def dataset(assembler: Assembler, data: Data, split: str, role: str = "eval_split") -> object:
    """``data.dataset`` built for ``split`` (which the key ``role`` of the data section sets): the
    dataset node takes it, and wrappers hand it on to the datasets they wrap that do not set one. A
    dataset that takes ``training`` is told whether it is the training split (to augment its samples)."""
    component = assembler.lookup(data.dataset, ("dataset",))
    takes = "split" in {p.name for p in component.params}
    assembler.handed = {}
    built = assembler.build(data.dataset, ("dataset",), {"split": split} if takes else {}, {"split": data.path(role)},
                            handed={"split": split, "training": role == "train_split"})
    if not takes and "split" not in assembler.handed:
        raise data.dataset.recipe.error(
            data.path(role), "no dataset in data.dataset takes a 'split' parameter; set data.eval_split: null")
    if len(built) == 0:
        raise data.dataset.recipe.error(data.path(role), f"split '{split}' is empty")
    return built


def transforms(assembler: Assembler, nodes: Sequence[Node]) -> Pipeline | None:
    """The pipeline of transform ``nodes``; None for none."""
    steps_ = []
    for node in nodes:
        component = assembler.lookup(node, ("transform",))
        transform = assembler.build(node, ("transform",))
        if not callable(transform):
            raise node.error(f"transform '{component.name}' builds a {type(transform).__name__}, which is not "
                             "callable as transform(x, y, generator)")
        steps_.append(Step(component.name, f"{node.recipe.mark(node.path)}: {format_path(node.path)}", transform))
    return Pipeline(tuple(steps_)) if steps_ else None


def record_name(metric: str) -> str:
    """The key a metric's value has in the records: its component name in snake_case."""
    return metric.replace("-", "_")


def record_names(settings: Settings, assembler: Assembler) -> tuple[str, ...]:
    """The numbers each epoch's record will hold: ``train_loss``, then the evaluation loss and metrics."""
    split = settings.data.eval_split
    if split is None:
        return ("train_loss",)
    metrics = []
    for node in settings.metrics:
        try:
            metrics.append(record_name(assembler.lookup(node, ("metric",)).name))
        except RecipeError:
            continue  # reported where the metrics are built
    return ("train_loss", f"{split}_loss", *(f"{split}_{name}" for name in metrics))


def _callback(assembler: Assembler, node: Node, supplied: dict[str, object], repeated: bool) -> Callback:
    """The callback of ``node``; its state key is its component name, with its parameters when another
    callback of the recipe has the same name (``repeated``)."""
    component = assembler.lookup(node, ("callback",))
    where = f"{node.recipe.mark(node.path)}: {format_path(node.path)}"
    key = f"{component.name}{json.dumps(node.raw, sort_keys=True, default=str)}" if repeated else component.name
    callback = Callback(component.name, where, assembler.build(node, ("callback",), supplied), key)
    problem = callback.problem()
    if problem:
        raise node.error(problem)
    return callback


def first_batch(data: object, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``size`` samples, as the trainer would batch them."""
    count = min(size, len(data))
    if hasattr(data, "batch"):
        return data.batch(torch.arange(count))
    samples = [data[i] for i in range(count)]
    return torch.stack([s[0] for s in samples]), torch.stack([torch.as_tensor(s[1]) for s in samples])


def _check_batch(parts: Parts, assembler: Assembler) -> None:
    """Run one batch through the transforms, the model, the loss and the metrics (built here: they are
    told the model's output width); record the leaf layers with their output shapes. A failure is
    reported at the recipe node it comes from."""
    settings = parts.settings
    model, model_node, loss_node = parts.model, settings.model, settings.train.loss
    x, y = first_batch(parts.train_data, settings.data.batch_size)
    x, y = _transformed(parts, x.to(parts.device), y.to(parts.device))
    names = {id(m): n for n, m in model.named_modules()}
    stack: list[tuple[nn.Module, tuple]] = []

    def before(module: nn.Module, args: tuple) -> None:
        stack.append((module, tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))))

    def after(module: nn.Module, args: tuple, out: object) -> None:
        stack.pop()
        if not any(True for _ in module.children()):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            own = sum(p.numel() for p in module.parameters(recurse=False))
            parts.layers.append(Row(names.get(id(module), "?") or "(model)", type(module).__name__, str(shape), own))

    hooks = [h for m in model.modules() for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), parts.precision.autocast():
            out = model(x)
    except ZooError as exc:
        raise _failed(model_node, parts.origins, stack, names, str(exc)) from None
    except Exception as exc:
        raise _failed(model_node, parts.origins, stack, names, f"{type(exc).__name__}: {exc}") from exc
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. torch's warning that mismatched shapes broadcast
            parts.loss(out, y)
    except Exception as exc:
        raise loss_node.error(
            f"cannot compare the model's output {tuple(out.shape)} with the targets {tuple(y.shape)}: {exc}",
        ) from None
    if not y.is_floating_point() and out.dim() == y.dim() + 1 and out.shape[:-1] == y.shape:
        _check_classes(out.shape[-1], [parts.train_data, parts.eval_data], model_node)
    parts.metrics.update(build_metrics(settings.metrics, assembler, parts.device, out, y, parts.classes))


def _transformed(parts: Parts, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch through the training transforms (to check them) and the evaluation transforms (what
    the model is checked on); errors at the transform's node."""
    data = parts.settings.data
    checks = ((parts.transform, data.transform, batch_generator(parts.device, parts.settings.train.seed, 1, 1)),
              (parts.eval_transform, data.eval_transform, None))
    out = x, y
    for pipeline, nodes, generator in checks:
        if pipeline is not None:
            try:
                out = pipeline(x.clone(), y.clone(), generator)
            except TransformError as exc:
                raise nodes[pipeline.steps.index(exc.step)].error(exc.reason) from None
    return out if parts.eval_transform is not None else (x, y)


def build_metrics(nodes: Sequence[Node], assembler: Assembler, device: torch.device, out: torch.Tensor,
                  y: torch.Tensor, classes: list[str] | None = None) -> dict[str, object]:
    """Metrics by record name, each tried on a batch's output ``out`` and targets ``y``; errors at the
    metric's node."""
    built: dict[str, object] = {}
    problems = []
    for node in nodes:
        component = assembler.lookup(node, ("metric",))
        name = record_name(component.name)
        if name in built:
            raise node.error(f"metric '{component.name}' is listed twice")
        supplied = {k: v for k, v in {"num_classes": out.shape[-1], "classes": classes}.items() if k not in node.params}
        metric = assembler.build(node, ("metric",), supplied)
        try:
            metric = metric.to(device)
            metric.update(out, y)
            metric.compute()
            metric.reset()
        except Exception as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            problems.append(node.error(f"metric '{component.name}' fails on a batch of the model's output "
                                       f"{tuple(out.shape)} and targets {tuple(y.shape)}: {type(exc).__name__}: {first}"))
        built[name] = metric
    raise_all(problems)
    return built


@dataclass(eq=False)
class Evaluation:
    """What scoring a trained model on one split of its recipe's data needs."""

    data: object
    loss: nn.Module
    metrics: dict[str, object]
    transform: Pipeline | None


def evaluation(settings: Settings, assembler: Assembler, model: nn.Module, split: str) -> Evaluation:
    """The data of ``split``, the loss, the metrics (tried on a first batch through ``model``) and the
    evaluation transforms of a recorded recipe, built by ``assembler`` (a weights file's:
    zoo.weights.load.assembler)."""
    loss = assembler.build(settings.train.loss, ("loss",))
    transform = transforms(assembler, settings.data.eval_transform)
    data = dataset(assembler, settings.data, split)
    device = next(model.parameters()).device
    x, y = first_batch(data, 8)
    x, y = x.to(device), y.to(device)
    if transform is not None:
        x, y = transform(x, y, None)
    with torch.no_grad():
        out = model(x)
    classes = getattr(data, "info", {}).get("classes")
    return Evaluation(data, loss, build_metrics(settings.metrics, assembler, device, out, y, classes), transform)


def _check_classes(outputs: int, datasets: list, model: Node) -> None:
    """A classifier needs an output for every class its data has; one batch may show only a few
    (the bundled MNIST is sorted by class), so look at the datasets' labels and declared classes."""
    for data in datasets:
        if data is None:
            continue
        declared = len(getattr(data, "info", {}).get("classes", ()))
        top = int(data.tensors()[1].max()) if hasattr(data, "tensors") else -1
        needed = max(declared, top + 1)
        if needed > outputs:
            name = getattr(data, "info", {}).get("name", "the dataset")
            raise model.error(f"the model has {outputs} outputs per prediction but {name} has {needed} classes "
                              f"(labels 0..{needed - 1}): give its last layer {needed} outputs")


def _failed(model: Node, origins: dict[int, Node], stack: list, names: dict, message: str) -> RecipeError:
    for module, _ in reversed(stack):
        if id(module) in origins:
            inner = stack[-1][0]
            where = names.get(id(inner)) or type(inner).__name__
            got = ", ".join(str(s) for s in stack[-1][1])
            return origins[id(module)].error(
                f"the model fails on a batch: {where} ({type(inner).__name__}) got input {got}: {message}")
    return model.error(f"the model fails on a batch: {message}")

