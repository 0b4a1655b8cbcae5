"""zoo: a plugin-based PyTorch model zoo.

Importing zoo does not import torch: listing and describing components stays fast. These functions
are entry points: they use the registry of the installed plugins (``default_registry()``) unless
given another; everything below them is handed its registry.
"""

from __future__ import annotations

from zoo.deprecation import ZooDeprecationWarning
from zoo.errors import ZooError
from zoo.registry import Component, Plugin, Registry, default_registry
from zoo.registry.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["Component", "Plugin", "Registry", "ZooDeprecationWarning", "ZooError", "components", "create", "default_registry", "hookimpl", "load",
           "predict"]


def components(kind: str | None = None, pattern: str | None = None) -> list[Component]:
    """Registered components, optionally of one kind and matching an fnmatch pattern like '*attention*'."""
    return default_registry().components(kind, pattern)


def create(name: str, /, *, kind: str | None = None, **params: object) -> object:
    """Build the registered component ``name`` (or ``plugin:name``) with checked ``params``."""
    return default_registry().get(name, kind).build(**params)


def load(name_or_path, *, device=None, dtype=None, version=None, registry: Registry | None = None):
    """A ready ``torch.nn.Module`` in eval mode, its weights verified: ``NAME`` is the published model
    of the catalog, ``NAME@latest`` / ``NAME@3`` a local build, a path that file.
    ``model.zoo_meta`` is what the file records, ``model.zoo_source`` which file it is. See
    :func:`zoo.weights.load.load`."""
    from zoo.weights.load import load as load_weights

    return load_weights(name_or_path, registry or default_registry(), device=device, dtype=dtype, version=version)


def predict(model, inputs, *, top_k: int = 5, registry: Registry | None = None) -> list[dict]:
    """Predictions of ``model`` (a module from :func:`load`, or what ``load`` takes) on raw ``inputs``:
    image files, arrays, token id lists, one or a list. One dict per input: ``top`` (labels with
    probabilities) for a classifier, ``tokens`` for a sequence model. See :mod:`zoo.use.predict`."""
    from zoo.use.predict import facts
    from zoo.use.predict import predict as run

    registry = registry or default_registry()
    model = model if hasattr(model, "zoo_meta") else load(model, registry=registry)
    return run(model, inputs, top_k, known=facts(model, registry))
