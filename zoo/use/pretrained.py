"""The timm-shaped names of zoo from Python: :func:`list_models` and :func:`create_model`, over the
registry and the catalogs (``zoo.list_models``, ``zoo.create_model``)."""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from zoo.assembly.finetune import head
from zoo.errors import ZooError
from zoo.recipe import catalog
from zoo.recipe.nodes import model_node
from zoo.registry import Registry
from zoo.registry.library import pretrained_tags
from zoo.weights.load import assembler, load


def list_models(registry: Registry, pattern: str | None = None, *, pretrained: bool = False,
                kind: str = "model") -> list[str]:
    """The names of the registered components of ``kind`` (default: models), or with ``pretrained``
    of the catalogs' published models and the bridged libraries' pretrained tags, matching the fnmatch ``pattern`` when given, sorted."""
    if pretrained:
        names = [n for n in catalog.entries(registry) if pattern is None or fnmatch.fnmatchcase(n, pattern)]
        return sorted([*names, *pretrained_tags(registry, pattern)])
    return sorted({c.name for c in registry.components(kind, pattern)})


def create_model(registry: Registry, name: str, *, pretrained: bool = False, **params: object) -> nn.Module:
    """A model: the component ``name`` built with ``params``; with ``pretrained`` the published model
    ``name`` (what ``zoo.load(name)`` gives), or, with ``params`` that change it, the model they make
    with every published tensor that still fits -- a new head keeps its own initialisation, as
    ``train.new_head`` does (timm's ``num_classes=``); any other tensor that no longer fits is an error."""
    if not pretrained:
        return registry.get(name, "model" if _is_model(registry, name) else None).build(**params)
    model = load(name, registry)
    if not params:
        return model
    meta = model.zoo_meta
    node = meta.model if isinstance(meta.model, dict) else {"component": meta.model}
    changed = {**node, **params}
    built = assembler(meta, registry).model(model_node(changed, model.zoo_source.path))
    published, own = model.state_dict(), built.state_dict()
    prefix = head(built) + "."
    refused = [f"{key} {tuple(published[key].shape)} -> {tuple(value.shape)}" for key, value in own.items()
               if key in published and published[key].shape != value.shape and not key.startswith(prefix)]
    missing = [key for key in own if key not in published and not key.startswith(prefix)]
    if refused or missing:
        said = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ZooError(f"create_model({name!r}, pretrained=True, {said}) changes what the published weights fit "
                       f"beyond the head ({head(built)}): " + "; ".join([*refused, *(f"{k} is new" for k in missing)])
                       + ". Only a new head keeps its own initialisation; train the rest from a recipe")
    with torch.no_grad():
        for key, value in own.items():
            if key in published and published[key].shape == value.shape:
                value.copy_(published[key])
    return built.eval()


def _is_model(registry: Registry, name: str) -> bool:
    bare = name.rpartition(":")[2]
    return any(c.name == bare for c in registry.components("model"))
