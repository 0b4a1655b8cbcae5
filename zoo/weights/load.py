"""The one path from a weights file back to a ready model, and to the recipe it was trained with:
``zoo.load``, ``zoo predict``, ``zoo verify``, ``zoo inspect``, ``zoo export`` and ``zoo card`` all
go through :func:`load` and :func:`settings`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from zoo.assembly.assembler import Assembler, Bounded, NoInit, Pins
from zoo.errors import ZooError
from zoo.recipe.nodes import model_node
from zoo.recipe.schema import Settings, recorded
from zoo.registry import Registry
from zoo.weights.format import read
from zoo.weights.locate import Located, locate
from zoo.weights.metadata import WeightsMeta

# No tensor the rebuilt model makes may be larger than 4x its file, nor than this: a file cannot
# make zoo allocate what it merely claims (ZOO_MAX_BUILD_BYTES sets another bound).
MIN_BUILD_BYTES = 1 << 30


def load(name_or_path: str | Path, registry: Registry, *, device: str | torch.device | None = None,
         dtype: torch.dtype | None = None, version: str | int | None = None) -> nn.Module:
    """A model in eval mode with its weights, verified: ``model.zoo_meta`` is the file's metadata
    (:class:`WeightsMeta`), ``model.zoo_source`` says which file it is (:class:`Located`). What a
    name means: :mod:`zoo.weights.locate`. ``device`` and ``dtype`` (a floating-point dtype, applied
    to floating-point weights) say where the weights go."""
    return load_located(locate(name_or_path, registry, version), registry, device, dtype)


def load_located(located: Located, registry: Registry, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> nn.Module:
    """Read, check and load a located weights file; any problem raises ZooError before the model is
    returned. The model is built once, without random initialisation, and takes the file's mapped
    tensors as its own, so loading costs about what reading the file does."""
    path = located.path
    device = _device(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ZooError(f"dtype must be a floating-point torch.dtype such as torch.bfloat16, got {dtype!r}")
    tensors, meta = read(path, located.sha256)
    model = rebuild(meta, path, registry)
    check_state(model, tensors, path)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.to(device=device, dtype=dtype)
    model.eval()
    model.zoo_meta = meta
    model.zoo_source = located
    return model


def _device(device: str | torch.device | None) -> torch.device | None:
    try:
        return None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ZooError(f"device {device!r} is not a torch device (cpu, cuda, cuda:N, mps): {exc}") from None


def rebuild(meta: WeightsMeta, origin: Path, registry: Registry, *, initialise: bool = False) -> nn.Module:
    """The model a weights file describes, built through the registry, each component name meaning
    what it meant when the file was saved (``meta.components``, whatever plugins were installed
    since); without random initialisation (for weights that follow) unless ``initialise``."""
    limit = int(os.environ.get("ZOO_MAX_BUILD_BYTES") or max(4 * _size(origin), MIN_BUILD_BYTES))
    with Bounded(limit, f"{origin}: the model it describes"), contextlib.nullcontext() if initialise else NoInit():
        return assembler(meta, registry).model(model_node(meta.model, origin))


def assembler(meta: WeightsMeta, registry: Registry) -> Assembler:
    """The assembler of a weights file's components: each name means what it meant when the file was
    saved (``meta.components``), and an error names the plugin version it was saved with."""
    return Assembler(registry, pins(meta))


def pins(meta: WeightsMeta) -> Pins:
    """The components a weights file was made of, and its plugins' versions: the one place they are read."""
    plugins = meta.versions.plugins if meta.versions else {}
    return Pins(meta.components, {name: f"{p.dist} {p.version}" for name, p in plugins.items()})


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def settings(model: nn.Module) -> Settings:
    """The recipe a loaded model was trained with, brought up to this zoo's schema and validated;
    errors name the file."""
    meta, source = loaded(model)
    return recorded(meta.recipe, meta.recipe_version, source.path)


def loaded(model: nn.Module) -> tuple[WeightsMeta, Located]:
    """The metadata and source of a model from :func:`load`; ZooError for any other module."""
    meta, source = getattr(model, "zoo_meta", None), getattr(model, "zoo_source", None)
    if not isinstance(meta, WeightsMeta) or not isinstance(source, Located):
        raise ZooError("the model has no zoo metadata: load it with zoo.load")
    return meta, source


def check_state(model: nn.Module, tensors: dict[str, torch.Tensor], origin: Path) -> None:
    """Raise ZooError naming every missing or unexpected key and every shape or dtype mismatch (a file
    saved in another floating-point dtype fits: the model takes the file's, or ``dtype=``)."""
    expected = model.state_dict()
    problems = [f"missing key {k} {tuple(v.shape)}" for k, v in expected.items() if k not in tensors]
    problems += [f"unexpected key {k} {tuple(v.shape)}" for k, v in tensors.items() if k not in expected]
    for key in expected.keys() & tensors.keys():
        want, got = expected[key], tensors[key]
        if want.shape != got.shape:
            problems.append(f"{key}: the model has shape {tuple(want.shape)}, the file {tuple(got.shape)}")
        elif want.dtype != got.dtype and not (want.is_floating_point() and got.is_floating_point()):
            problems.append(f"{key}: the model has dtype {want.dtype}, the file {got.dtype}")
    if problems:
        raise ZooError(f"{origin}: weights do not fit the model: " + "; ".join(sorted(problems)))
