"""Building a recipe's components through the registry; every failure is located in the recipe."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from zoo.callbacks import Callback
from zoo.errors import ZooError
from zoo.finetune import InitReport, parameter_groups, start
from zoo.precision import Precision, precision
from zoo.recipe import KeyPath, Recipe, RecipeError, format_path, raise_all
from zoo.registry import Component, Registry
from zoo.schema import Data, Node, Settings
from zoo.signature import ParamError
from zoo.text import with_article
from zoo.transforms import Pipeline, Step, TransformError, batch_generator

MODEL_KINDS = ("model", "layer")


@dataclass
class Assembler:
    """Builds the component nodes of a recipe and remembers which node each module came from."""

    registry: Registry
    origins: dict[int, Node] = field(default_factory=dict)
    handed: dict[str, object] = field(default_factory=dict)  # the handed parameters some node took
    pins: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> plugin:name, from saved weights
    saved_with: dict[str, str] = field(default_factory=dict)  # plugin -> "distribution version", from saved weights
    resolved: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> plugin:name looked up

    def build(self, node: Node, kinds: tuple[str, ...], supplied: dict[str, object] | None = None,
              supplied_from: dict[str, KeyPath] | None = None, handed: dict[str, object] | None = None) -> object:
        """Build ``node``; ``supplied`` parameters come from zoo, ``supplied_from`` says which keys set them.
        ``handed`` parameters go to every node below of the same kind that takes them and does not set
        them (a dataset wrapper hands the split on to the datasets it wraps)."""
        supplied, supplied_from, handed = supplied or {}, supplied_from or {}, handed or {}
        component = self.lookup(node, kinds)
        for key in node.params:
            if key in supplied:
                where = f" (set it with {supplied_from[key][-1]})" if key in supplied_from else ""
                raise node.error(f"'{key}' is supplied by zoo{where}; remove it here", key)
        names = {p.name for p in component.params}
        taken = {k: v for k, v in handed.items() if k in names and k not in node.params}
        self.handed.update(taken)
        supplied = {**supplied, **taken}
        kinds_of = {p.name: _param_kinds(p.type) for p in component.params}
        values = {**{key: self._value(value, (*node.path, key), node.recipe, kinds_of.get(key), handed)
                     for key, value in node.params.items()}, **supplied}
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

    def _value(self, value: object, path: KeyPath, recipe: Recipe, kinds: tuple[str, ...] | None,
               handed: dict[str, object]) -> object:
        """A parameter's value with its nodes built; a bare name is a node where the parameter's type
        says which kinds it takes."""
        if isinstance(value, str) and kinds:
            value = Node(value, {}, path, value, recipe)
        if isinstance(value, Node):
            kinds = kinds or MODEL_KINDS
            return self.build(value, kinds, handed=handed if kinds == ("dataset",) else None)
        if isinstance(value, list):
            return [self._value(v, (*path, i), recipe, kinds, handed) for i, v in enumerate(value)]
        return value

    def lookup(self, node: Node, kinds: tuple[str, ...]) -> Component:
        """The registered component ``node`` names, of one of ``kinds``; errors at the node's name."""
        name = node.name
        if not isinstance(name, str):
            raise node.recipe.error(node.name_path, f"a component name is a string, got {name!r}")
        pinned = next((self.pins[k][name] for k in kinds if name in self.pins.get(k, {})), None)
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
        saved before zoo recorded that, the plugins they were saved with) is not installed."""
        loaded = {p.name for p in self.registry.plugins if p.status == "loaded"}
        absent = {p: shipped for p, shipped in self.saved_with.items() if p not in loaded}
        if pinned:
            plugin, _, bare = pinned.partition(":")
            if plugin in loaded:
                return None
            shipped = absent.get(plugin, "")
            dist, _, version = shipped.partition(" ")
            install = f"pip install '{dist}=={version}'" if version else f"install the distribution that provides plugin '{plugin}'"
            saved = f" ({shipped} when these weights were saved)" if shipped else ""
            return f"'{bare}' comes from plugin '{plugin}'{saved}, which is not installed: {install}"
        if not absent:
            return None
        listed = ", ".join(f"'{p}' ({shipped})" for p, shipped in sorted(absent.items()))
        installs = " ".join(f"'{s.split(' ')[0]}=={s.split(' ')[1]}'" for s in absent.values() if " " in s)
        return (f"unknown component; these weights were saved with plugins that are not installed now: {listed}. "
                f"pip install {installs}")

    def model(self, node: Node) -> nn.Module:
        model = self.build(node, MODEL_KINDS)
        if not isinstance(model, nn.Module):
            raise node.error(f"builds a {type(model).__name__}, not a torch.nn.Module")
        return model

    def dataset(self, data: Data, split: str, role: str = "eval_split") -> object:
        """``data.dataset`` built for ``split`` (which the key ``role`` of the data section sets): the
        dataset node takes it, and wrappers hand it on to the datasets they wrap that do not set one."""
        component = self.lookup(data.dataset, ("dataset",))
        takes = "split" in {p.name for p in component.params}
        self.handed = {}
        built = self.build(data.dataset, ("dataset",), {"split": split} if takes else {}, {"split": data.path(role)},
                           handed={"split": split})
        if not takes and "split" not in self.handed:
            raise data.dataset.recipe.error(
                data.path(role), f"no dataset in data.dataset takes a 'split' parameter; set data.eval_split: null")
        if len(built) == 0:
            raise data.dataset.recipe.error(data.path(role), f"split '{split}' is empty")
        return built

    def transforms(self, nodes: tuple[Node, ...]) -> Pipeline | None:
        """The pipeline of transform ``nodes``; None for none."""
        steps = []
        for node in nodes:
            component = self.lookup(node, ("transform",))
            transform = self.build(node, ("transform",))
            if not callable(transform):
                raise node.error(f"transform '{component.name}' builds a {type(transform).__name__}, which is not "
                                 "callable as transform(x, y, generator)")
            steps.append(Step(component.name, f"{node.recipe.mark(node.path)}: {format_path(node.path)}", transform))
        return Pipeline(tuple(steps)) if steps else None


def _param_kinds(type_text: str) -> tuple[str, ...] | None:
    """The kinds of component a parameter of this type takes, by its hint: None for plain values."""
    for word, kinds in (("Dataset", ("dataset",)), ("Transform", ("transform",)), ("Module", MODEL_KINDS)):
        if word in type_text:
            return kinds
    return None


class NoInit(TorchFunctionMode):
    """A context in which modules are built without their random initialisation, for weights that
    follow (a weights file, a checkpoint): ``torch.nn.init`` and the in-place random fills are skipped.
    On the meta device the first random fill would also import torch._dynamo, about a second."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func in _RANDOM_FILLS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


_RANDOM_FILLS = {torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                 torch.Tensor.exponential_, torch.Tensor.cauchy_, torch.Tensor.log_normal_, torch.Tensor.geometric_}


@dataclass
class Parts:
    """The built pieces of a recipe, ready to train."""

    model: nn.Module
    train_data: object
    eval_data: object | None
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object | None
    device: torch.device
    assembler: Assembler
    callbacks: list[Callback] = field(default_factory=list)
    metrics: dict[str, object] = field(default_factory=dict)  # by record name; built by trace()
    transform: Pipeline | None = None
    eval_transform: Pipeline | None = None
    precision: Precision | None = None
    init: InitReport | None = None  # what train.init took from its weights file


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


def assemble(settings: Settings, registry: Registry, device: str, steps_per_epoch: Callable[[int], int], *,
             weights_follow: bool = False) -> Parts:
    """Model (seeded), datasets, loss, optimizer and schedule of a validated recipe, on ``device``.

    ``steps_per_epoch(len(train_data))`` gives the schedule its ``total_steps``; with
    ``weights_follow`` (a resume) the model is built without random initialisation."""
    assembler = Assembler(registry)
    problems: list[RecipeError] = []  # independent parts are all built, and all their errors reported

    def attempt(build: Callable[[], object]) -> object:
        try:
            return build()
        except RecipeError as exc:
            if str(exc) not in map(str, problems):  # the train and eval splits share one dataset node
                problems.append(exc)
            return None

    try:
        device = resolve_device(device)
    except ZooError as exc:
        problems.append(settings.error(settings.train.path("device"), str(exc)))
    numerics = None
    if isinstance(device, torch.device):
        try:
            numerics = precision(settings.train.precision, device)
        except ZooError as exc:
            problems.append(settings.error(settings.train.path("precision"), str(exc)))
    torch.manual_seed(settings.train.seed)
    with NoInit() if weights_follow else contextlib.nullcontext():
        model = attempt(lambda: assembler.model(settings.model))
    data, train = settings.data, settings.train
    train_data = attempt(lambda: assembler.dataset(data, data.train_split, "train_split"))
    eval_data = None if data.eval_split is None else attempt(lambda: assembler.dataset(data, data.eval_split))
    loss = attempt(lambda: assembler.build(train.loss, ("loss",)))
    transform = attempt(lambda: assembler.transforms(data.transform))
    eval_transform = attempt(lambda: assembler.transforms(data.eval_transform))
    recorded = record_names(settings, assembler)
    callbacks = [attempt(lambda node=node: _callback(assembler, node, recorded)) for node in train.callbacks]
    raise_all(problems)
    model = model.to(device)
    init = start(model, settings)
    optimizer = assembler.build(train.optimizer, ("optimizer",),
                                {"params": parameter_groups(model, settings) or model.parameters()})
    schedule = None
    if train.schedule is not None:
        total = steps_per_epoch(len(train_data)) * train.epochs
        schedule = assembler.build(train.schedule, ("scheduler",), {"optimizer": optimizer, "total_steps": total})
    return Parts(model, train_data, eval_data, loss, optimizer, schedule, device, assembler, callbacks,
                 transform=transform, eval_transform=eval_transform, precision=numerics, init=init)


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


def _callback(assembler: Assembler, node: Node, recorded: tuple[str, ...]) -> Callback:
    component = assembler.lookup(node, ("callback",))
    where = f"{node.recipe.mark(node.path)}: {format_path(node.path)}"
    takes = "recorded" in {p.name for p in component.params}
    callback = Callback(component.name, where, assembler.build(node, ("callback",), {"recorded": recorded} if takes else {}))
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


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    shape: str
    params: int


def trace(parts: Parts, settings: Settings) -> tuple[list[Row], int]:
    """Run one batch through the model, the loss and the metrics (built here: they are told the
    model's output width); the leaf layers with their output shapes.

    A layer that fails is reported at the recipe node it was built from.
    """
    model = parts.model
    model_node, loss_node = settings.model, settings.train.loss
    x, y = first_batch(parts.train_data, settings.data.batch_size)
    x, y = x.to(parts.device), y.to(parts.device)
    x, y = _transformed(parts, settings, x, y)
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
        with torch.no_grad(), parts.precision.autocast() if parts.precision else contextlib.nullcontext():
            out = model(x)
    except ZooError as exc:
        raise _located(model_node, parts.assembler, stack, names, str(exc)) from None
    except Exception as exc:
        raise _located(model_node, parts.assembler, stack, names, f"{type(exc).__name__}: {exc}") from exc
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
    parts.metrics.update(build_metrics(settings.metrics, parts.assembler, parts.device, out, y))
    return rows, sum(p.numel() for p in model.parameters())


def _transformed(parts: Parts, settings: Settings, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch through the training transforms (to check them) and the evaluation transforms (what
    the model is traced on); errors at the transform's node."""
    data = settings.data
    checks = ((parts.transform, data.transform, batch_generator(parts.device, settings.train.seed, 1, 1)),
              (parts.eval_transform, data.eval_transform, None))
    for pipeline, nodes, generator in checks:
        if pipeline is not None:
            try:
                out = pipeline(x.clone(), y.clone(), generator)
            except TransformError as exc:
                raise nodes[pipeline.steps.index(exc.step)].error(exc.reason) from None
    return (x, y) if parts.eval_transform is None else out


def build_metrics(nodes: tuple[Node, ...], assembler: Assembler, device: torch.device, out: torch.Tensor,
                  y: torch.Tensor) -> dict[str, object]:
    """Metrics by record name (the component's name, snake_case), each tried on a batch's output
    ``out`` and targets ``y``; errors at the metric's node."""
    built: dict[str, object] = {}
    problems = []
    for node in nodes:
        component = assembler.lookup(node, ("metric",))
        name = record_name(component.name)
        if name in built:
            raise node.error(f"metric '{component.name}' is listed twice")
        wants = {p.name for p in component.params} - set(node.params)
        supplied = {"num_classes": out.shape[-1]} if "num_classes" in wants else {}
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


def _located(model: Node, assembler: Assembler, stack: list, names: dict, message: str) -> RecipeError:
    for module, _ in reversed(stack):
        if id(module) in assembler.origins:
            inner = stack[-1][0]
            where = names.get(id(inner)) or type(inner).__name__
            got = ", ".join(str(s) for s in stack[-1][1])
            return assembler.origins[id(module)].error(
                f"the model fails on a batch: {where} ({type(inner).__name__}) got input {got}: {message}")
    return model.error(f"the model fails on a batch: {message}")
