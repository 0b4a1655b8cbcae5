"""torchvision's classification models, each one's parameters and weights, read by importing
torchvision (once per version: zoo.registry.library caches them); and the factory that builds one."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from zoo.api import Architecture, params_of


def describe() -> Iterator[Architecture]:
    """Every model ``torchvision.models.list_models(module=torchvision.models)`` lists (classification),
    with the keyword parameters of the class its builder makes."""
    import torchvision.models as models

    for name in models.list_models(module=models):
        model_cls = _model_class(lambda: models.get_model(name))
        if model_cls is None:
            continue
        weights = models.get_model_weights(name)
        first = next(iter(weights))
        crop = first.transforms().crop_size[0]
        summary = (f"torchvision's {name}: {model_cls.__name__}; weights "
                   f"{', '.join(w.name for w in weights)} (zoo import torchvision:{name}.{first.name}).")
        yield Architecture(name, summary, params_of(model_cls), (3, crop, crop),
                           {f"{name}.{w.name}": f"torchvision:{name}.{w.name}" for w in weights})


class _Found(Exception):
    pass


def _model_class(build) -> type | None:
    """The class of the model ``build`` makes, caught as its ``__init__`` starts: nothing is built."""
    import torch

    found = []

    def trace(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "__init__":
            instance = frame.f_locals.get("self")
            if isinstance(instance, torch.nn.Module):
                found.append(type(instance))
                raise _Found
        return None

    sys.settrace(trace)
    try:
        build()
    except _Found:
        pass
    finally:
        sys.settrace(None)
    return found[0] if found else None


def create(name: str, **params: object):
    """``torchvision.models.get_model(name, weights=None, **params)``: random weights (``zoo import``
    brings torchvision's pretrained ones in as zoo files)."""
    import torchvision.models as models

    return models.get_model(name, weights=None, **params)
