"""Activation statistics: per-feature mean and std of what goes into and out of one named module."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.assembly.assembler import MODEL_KINDS
from zoo.assembly.parts import dataset, first_batch
from zoo.errors import ZooError
from zoo.files import offline
from zoo.registry import Registry
from zoo.text import did_you_mean
from zoo.weights.load import assembler, load_located, settings
from zoo.weights.locate import locate


@dataclass
class Subject:
    """A model to inspect, the batch to feed it, and a line saying what both are."""

    model: nn.Module
    inputs: Tensor
    description: str


@dataclass(frozen=True)
class FeatureStats:
    """Mean and (population) standard deviation of each feature (last dimension) over all other dimensions."""

    mean: Tensor
    std: Tensor

    @classmethod
    def of(cls, tensor: Tensor) -> FeatureStats:
        rows = tensor.detach().float().reshape(-1, tensor.shape[-1])
        std, mean = torch.std_mean(rows, dim=0, correction=0)
        return cls(mean.cpu(), std.cpu())


def find_module(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    """The submodule called ``name``: its full dotted name, or a unique dotted suffix of one."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if name in modules:
        return name, modules[name]
    matches = [full for full in modules if full.endswith("." + name)]
    if len(matches) == 1:
        return matches[0], modules[matches[0]]
    if matches:
        raise ZooError(f"module '{name}' is ambiguous: {', '.join(matches)}; give the full dotted name")
    hint = did_you_mean(name, modules)
    listing = ", ".join(f"{k} ({type(m).__name__})" for k, m in modules.items())
    raise ZooError(f"the model has no module '{name}'.{hint} Its modules: {listing}")


@torch.no_grad()
def capture(model: nn.Module, module: nn.Module, inputs: Tensor) -> dict[str, FeatureStats]:
    """Run ``inputs`` through ``model`` in eval mode; the statistics of ``module``'s first input and its output."""
    seen: dict[str, Tensor] = {}

    def hook(_module: nn.Module, args: tuple, output: object) -> None:
        seen["input"] = args[0]
        seen["output"] = output[0] if isinstance(output, tuple) else output

    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        model(inputs)
    except Exception as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        source = getattr(model, "zoo_source", None)
        where = f"{source.path}: " if source else ""
        raise ZooError(f"{where}the model fails on input of shape {tuple(inputs.shape)} ({type(exc).__name__}: {first}); "
                       "give --input-shape a shape it accepts (see its docstring: zoo info NAME)") from None
    finally:
        handle.remove()
        model.train(was_training)
    if not seen:
        raise ZooError(f"{type(module).__name__} was not called by the model's forward pass")
    return {key: FeatureStats.of(value) for key, value in seen.items()}


def subject(name: str, registry: Registry, input_shape: tuple[int, ...] | None = None, batch: int = 256,
            split: str | None = None, seed: int = 0) -> Subject:
    """A trained model (as ``zoo.load`` finds it) fed ``batch`` samples of the data it was trained
    on, read with the network off, or a registered layer or model built with its defaults
    (untrained, seeded) fed standard-normal input of ``input_shape``."""
    try:
        located = locate(name, registry)
    except ZooError as exc:
        located, missing = None, exc
    generator = torch.Generator().manual_seed(seed)
    if located is None:
        try:
            component = registry.get(name)
        except ZooError:
            component = None
        if component is None or component.kind not in MODEL_KINDS:
            raise ZooError(f"{missing}; nor is '{name}' a registered layer or model (see 'zoo list')")
        if input_shape is None:
            raise ZooError(f"{component.kind} '{name}' has no trained weights, so no data of its own: give "
                           "--input-shape (e.g. 4,10,312) to feed it standard-normal input")
        torch.manual_seed(seed)
        model = component.build()
        origin = f"{component.kind} {name} (untrained, seed {seed})"
    else:
        model = load_located(located, registry)
        origin = located.describe()
    device = next(model.parameters(), torch.empty(0)).device
    if input_shape is not None:
        first = next((m for m in model.modules() if not any(True for _ in m.children())), None)
        if isinstance(first, nn.Embedding):  # a token model: ids, not floats
            inputs = torch.randint(1, first.num_embeddings, input_shape, generator=generator).to(device)
            return Subject(model, inputs, f"{origin}, random token ids in [1, {first.num_embeddings}) "
                                          f"of shape {tuple(input_shape)}")
        inputs = torch.randn(input_shape, generator=generator).to(device)
        return Subject(model, inputs, f"{origin}, standard-normal input {tuple(input_shape)}")
    recipe = settings(model)
    split = split or recipe.data.eval_split or "test"
    with offline(f"the dataset {located.path} names"):
        data = dataset(assembler(model.zoo_meta, registry), recipe.data, split)
    inputs = first_batch(data, batch)[0].to(device)
    return Subject(model, inputs, f"{origin}, {len(inputs)} samples of its dataset's {split} split")
