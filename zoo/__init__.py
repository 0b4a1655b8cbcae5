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
__all__ = ["Component", "Plugin", "Registry", "ZooDeprecationWarning", "ZooError", "build", "components", "create",
           "create_model", "default_registry", "hookimpl", "list_models", "load", "predict", "push", "search"]


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


def list_models(pattern: str | None = None, *, pretrained: bool = False, kind: str = "model",
                registry: Registry | None = None) -> list[str]:
    """Names, as timm's ``list_models``: the registered models (or components of ``kind``) matching the
    fnmatch ``pattern``; with ``pretrained``, the catalogs' published models and the bridged libraries'
    pretrained tags (``timm:resnet18.a1_in1k``), which ``zoo.load`` and ``create_model(name,
    pretrained=True)`` take."""
    from zoo.use.pretrained import list_models as names

    return names(registry or default_registry(), pattern, pretrained=pretrained, kind=kind)


def create_model(name: str, *, pretrained: bool = False, registry: Registry | None = None, **params: object):
    """A model, as timm's ``create_model``: the component ``name`` built with ``params``; with
    ``pretrained``, the published weights (``zoo.load(name)``), and ``params`` that change only the
    head (``out_features=...``) give a new head on the published body. See :mod:`zoo.use.pretrained`."""
    from zoo.use.pretrained import create_model as create_one

    return create_one(registry or default_registry(), name, pretrained=pretrained, **params)


def build(recipe, *, overrides=(), out=None, resume: bool = False, nproc: int = 1, registry: Registry | None = None,
          log=print):
    """Train a recipe as ``zoo build`` does -- a recipe file, a shipped recipe's name, or the recipe as a
    dict -- and return a :class:`zoo.training.outcome.Built` (the run folder, the weights file and the
    metrics it records, the store's label, the epoch kept); a list of them for a sweep. Problems
    raise ZooError (a RecipeError names the line); Ctrl-C saves a checkpoint and raises
    :class:`zoo.training.loop.Interrupted` (``resume=True`` goes on). ``overrides`` are ``--set`` items."""
    from zoo.training.outcome import train

    return train(recipe, registry or default_registry(), overrides=overrides, out=out, resume=resume, nproc=nproc,
                 log=log)


def search(recipe, *, overrides=(), out=None, trials: int | None = None, workers: int = 1, storage: str | None = None,
           registry: Registry | None = None, log=print):
    """Run a recipe's search as ``zoo search`` does and return a :class:`zoo.training.outcome.Searched`
    (its folder, its best trial and that trial's run, as filed in the store)."""
    from zoo.training.outcome import search as run

    return run(recipe, registry or default_registry(), overrides=overrides, out=out, trials=trials, workers=workers,
               storage=storage, log=log)


def push(model, dest: str, *, force: bool = False, registry: Registry | None = None):
    """Publish a model (a module from :func:`load`, or what ``load`` takes) as ``zoo push`` does, to a
    folder, ``hf-hub:ORG/REPO[@BRANCH]`` or a plugin's destination (``mlflow:NAME``); returns what it
    did (:class:`zoo.use.share.Pushed`: where, the files changed, the Hub commit or registry version)."""
    from zoo.use.share import push as publish

    registry = registry or default_registry()
    model = model if hasattr(model, "zoo_meta") else load(model, registry=registry)
    return publish(model, dest, registry, force=force)

