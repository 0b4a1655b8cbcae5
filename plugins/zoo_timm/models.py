"""timm's model list, each architecture's parameters and pretrained tags, read by importing timm
(once per timm version: zoo.registry.library caches them); and the factory that builds one."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from zoo.api import Architecture, params_of

# What timm.create_model's builder takes besides the model's own parameters: not a recipe's business.
BUILDER = {"pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict", "pretrained_filter_fn", "feature_cfg",
           "features_only", "out_indices", "feature_cls", "kwargs_filter"}


class _Captured(Exception):
    """What an architecture's entry point hands timm's builder: the model class and its arguments."""


def _capture(model_cls, variant, pretrained=False, **kwargs):
    raise _Captured(model_cls, kwargs)


def describe() -> Iterator[Architecture]:
    """Every architecture ``timm.list_models()`` lists, with the parameters of the class its entry
    point builds (the entry point's own values as defaults), read without building a model."""
    import timm
    from timm.models import get_pretrained_cfg, model_entrypoint

    builders = [m for name, m in list(sys.modules.items())
                if name.startswith("timm.models.") and hasattr(m, "build_model_with_cfg")]
    saved = [m.build_model_with_cfg for m in builders]
    tags: dict[str, dict[str, str]] = {}
    for tag in timm.list_models(pretrained=True):
        cfg = get_pretrained_cfg(tag)
        if cfg is not None and cfg.hf_hub_id:
            tags.setdefault(tag.partition(".")[0], {})[tag] = f"hf-hub:{cfg.hf_hub_id}"
    try:
        for m in builders:
            m.build_model_with_cfg = _capture
        for name in timm.list_models():
            entry = model_entrypoint(name)
            try:
                entry(pretrained=False)
                model_cls, given = entry, {}
            except _Captured as captured:
                model_cls, given = captured.args
            except Exception:  # an entry point that builds otherwise: its own keyword parameters
                model_cls, given = entry, {}
            cfg = get_pretrained_cfg(name)
            pretrained = tags.get(name, {})
            summary = (f"timm's {name}: {model_cls.__name__} of {model_cls.__module__}"
                       + (f"; {len(pretrained)} pretrained ({', '.join(sorted(pretrained)[:2])}"
                          f"{', ...' if len(pretrained) > 2 else ''})" if pretrained else "") + ".")
            yield Architecture(name, summary, params_of(model_cls, given, skip=BUILDER),
                               tuple(cfg.input_size) if cfg is not None else (), pretrained)
    finally:
        for m, original in zip(builders, saved):
            m.build_model_with_cfg = original


def create(name: str, **params: object):
    """``timm.create_model(name, **params)``, with random weights (zoo loads pretrained ones itself)."""
    import timm

    return timm.create_model(name, pretrained=False, **params)
