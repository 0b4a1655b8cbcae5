"""zoo: a plugin-based PyTorch model zoo.

Importing zoo does not import torch: listing and describing components stays fast.
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.registry import Component, Plugin, Registry, default_registry

__version__ = "0.1.0"
__all__ = ["Component", "Plugin", "Registry", "ZooError", "components", "create", "default_registry", "hookimpl", "load",
           "predict"]


def components(kind: str | None = None, pattern: str | None = None) -> list[Component]:
    """Registered components, optionally of one kind and matching an fnmatch pattern like '*attention*'."""
    return default_registry().components(kind, pattern)


def create(name: str, /, *, kind: str | None = None, **params: object) -> object:
    """Build the registered component ``name`` (or ``plugin:name``) with checked ``params``."""
    return default_registry().get(name, kind).build(**params)


def load(name_or_path, *, device=None, dtype=None, source: str | None = None, version=None):
    """A ready ``torch.nn.Module`` in eval mode: a local build (``NAME``, ``NAME@3``) or catalog model
    by name, or a weights file, verified; ``model.zoo_meta`` holds its metadata. See
    :func:`zoo.loading.load`."""
    from zoo.loading import load as load_weights

    return load_weights(name_or_path, device=device, dtype=dtype, source=source, version=version)


def predict(model, inputs, *, top_k: int = 5) -> list[dict]:
    """Predictions of ``model`` (a module from :func:`load`, or what ``load`` takes) on raw ``inputs``:
    image files, arrays, token id lists, one or a list. One dict per input: ``top`` (labels with
    probabilities) for a classifier, ``tokens`` for a sequence model. See :mod:`zoo.prediction`."""
    from zoo.prediction import predict as run

    return run(model if hasattr(model, "zoo_meta") else load(model), inputs, top_k)
