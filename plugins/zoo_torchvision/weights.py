"""torchvision's pretrained weights (``ResNet18_Weights.IMAGENET1K_V1``) as a zoo record: fetched with
torchvision's own loader (``torch.hub.load_state_dict_from_url`` with ``weights_only=True`` and the
hash check of the file name), with the preprocessing of ``weights.transforms()``, the categories and
the figures of ``weights.meta``."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from zoo.api import Imported, InputSpec, Preprocess, ZooError, did_you_mean, imported_record, stream_sha256

NAME = re.compile(r"torchvision:([a-z0-9_]+)\.([A-Za-z0-9_]+)")


def fetch(name: str, url: str | None, folder: Path):
    """The tensors and record of torchvision weights ``torchvision:ARCHITECTURE.WEIGHTS``; None for another library's."""
    if not name.startswith("torchvision:"):
        return None
    import torch
    import torchvision
    import torchvision.models as models

    found = NAME.fullmatch(name)
    if not found:
        raise ZooError(f"'{name}' is not torchvision:ARCHITECTURE.WEIGHTS, like torchvision:resnet18.IMAGENET1K_V1")
    architecture, tag = found.groups()
    listed = models.list_models(module=models)
    if architecture not in listed:
        raise ZooError(f"torchvision has no classification model '{architecture}'.{did_you_mean(architecture, listed)}")
    choices = {w.name: w for w in models.get_model_weights(architecture)}
    if tag not in choices:
        raise ZooError(f"no weights '{tag}' for {architecture}: torchvision has {', '.join(choices)}")
    weights = choices[tag]
    source = url or weights.url
    try:
        state = torch.hub.load_state_dict_from_url(source, model_dir=str(folder / "torchvision"), progress=False,
                                                   check_hash=True, weights_only=True)
    except Exception as exc:  # the network, the hash check, or a file torch's safe loader refuses
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ZooError(f"{name}: fetching {source} failed: {first}") from None
    meta = weights.meta
    transform = weights.transforms()
    resize = transform.resize_size if isinstance(transform.resize_size, (list, tuple)) else [transform.resize_size]
    crop = transform.crop_size if isinstance(transform.crop_size, (list, tuple)) else [transform.crop_size]
    crop = (crop[0], crop[-1])
    preprocess = Preprocess(tuple(resize), transform.interpolation.value, crop, tuple(transform.mean),
                            tuple(transform.std))
    metrics = {key: value / 100 for figures in meta.get("_metrics", {}).values() for key, value in figures.items()}
    version = torchvision.__version__.split("+")[0]
    label = re.sub(r"[^a-z0-9]+", "-", f"torchvision-{architecture}-{tag}".lower()).strip("-")
    record = imported_record(label, {"component": f"torchvision:{architecture}",
                                     "num_classes": len(meta["categories"])},
                             InputSpec("image", (3, *crop), "float32", mode="RGB", preprocess=preprocess),
                             list(meta["categories"]),
                             Imported(f"torchvision {version}", source, tag, "BSD-3-Clause (torchvision); see "
                                      f"{meta.get('recipe', 'the weights recipe')} for the data's terms",
                                      stream_sha256(folder / "torchvision" / Path(urlparse(source).path).name)),
                             metrics)
    return state, record
