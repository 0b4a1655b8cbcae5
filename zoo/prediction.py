"""Predictions on raw input: image files, arrays, token lists, single or batched, turned into what the
model expects by the input spec its weights record, then the recipe's evaluation transforms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from zoo.assembly import Assembler
from zoo.data import input_spec
from zoo.errors import ZooError
from zoo.registry import default_registry
from zoo.schema import recorded
from zoo.transforms import Pipeline

IMAGE_FILES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Facts:
    """What predicting with a model needs to know, from its weights' metadata."""

    spec: dict  # zoo.data.input_spec
    classes: list[str] | None
    transform: Pipeline | None  # the recipe's evaluation transforms


def facts(model: nn.Module) -> Facts:
    """The input spec, class names and evaluation transforms of a model from ``zoo.load``. Weights
    saved before zoo recorded them get them from the recipe's dataset."""
    meta = getattr(model, "zoo_meta", None)
    if not meta:
        raise ZooError("the model has no zoo_meta: load it with zoo.load")
    settings = recorded(meta["recipe"], Path(meta.get("path", "the weights file")))
    assembler = Assembler(default_registry())
    spec, classes = meta.get("input"), meta.get("classes")
    if spec is None:
        data = assembler.dataset(settings.data, settings.data.eval_split or settings.data.train_split)
        spec, classes = input_spec(data), getattr(data, "info", {}).get("classes")
    return Facts(spec, classes, assembler.transforms(settings.data.eval_transform))


def prepare(inputs: object, spec: dict) -> Tensor:
    """A batch of model inputs from ``inputs``: an image file, a .npy file, an array or tensor, a list
    of token ids, or a list of any of these. ZooError says what does not fit the spec."""
    if _single(inputs, spec):
        return _one(inputs, spec)[None]
    if isinstance(inputs, Sequence) and inputs and all(isinstance(t, (int, np.integer)) for t in inputs):
        raise ZooError(f"the model takes {_describe(spec)}, not token ids")
    items = list(inputs)
    if not items:
        raise ZooError("no inputs")
    if isinstance(inputs, (np.ndarray, Tensor)) and not _single(items[0], spec):
        raise ZooError(f"expects {_describe(spec)}, got an array of shape {tuple(inputs.shape)}")
    return torch.stack([_one(item, spec) for item in items])


def predict(model: nn.Module, inputs: object, top_k: int = 5, *, known: Facts | None = None) -> list[dict]:
    """Predictions for ``inputs`` (see :func:`prepare`), one dict per input: for a classifier ``top``,
    the ``top_k`` classes as ``{"label", "index", "probability"}``; for a sequence model ``tokens``
    and ``probabilities`` per real position; otherwise ``values``."""
    known = known or facts(model)
    x = prepare(inputs, known.spec)
    device = next(model.parameters()).device
    x = x.to(device)
    if known.transform is not None:
        x, _ = known.transform(x, torch.zeros(len(x), device=device), None)
    with torch.no_grad():
        out = model(x).float()
    if known.spec["kind"] == "tokens" and out.dim() == 3:
        probabilities, tokens = out.softmax(-1).max(-1)
        real = x != known.spec.get("pad_id", 0)
        return [{"tokens": t[r].tolist(), "probabilities": p[r].tolist()} for t, p, r in zip(tokens, probabilities, real)]
    if out.dim() == 2 and (known.classes or out.shape[-1] > 1):
        probabilities = out.softmax(-1)
        best = probabilities.topk(min(top_k, out.shape[-1]), dim=-1)
        return [{"top": [{"label": _label(known.classes, i), "index": i, "probability": p}
                         for i, p in zip(indices.tolist(), values.tolist())]}
                for values, indices in zip(best.values, best.indices)]
    return [{"values": row.reshape(-1).tolist()} for row in out]


def _label(classes: Sequence[str] | None, index: int) -> str:
    return classes[index] if classes and index < len(classes) else str(index)


def _describe(spec: dict) -> str:
    if spec["kind"] == "tokens":
        return (f"token ids in 0..{spec['vocab_size'] - 1}, at most {spec['shape'][0]} per input "
                f"(padded with {spec.get('pad_id', 0)})")
    what = "an image" if spec["kind"] == "image" else "an input"
    return f"{what} of shape {tuple(spec['shape'])} ({spec['dtype']})"


def _single(item: object, spec: dict) -> bool:
    """Whether ``item`` is one input rather than a list of them."""
    if isinstance(item, (str, Path)):
        return True
    if spec["kind"] == "tokens":
        return isinstance(item, Sequence) and all(isinstance(t, (int, np.integer)) for t in item) or (
            isinstance(item, (np.ndarray, Tensor)) and item.ndim == 1)
    if isinstance(item, (np.ndarray, Tensor)):
        if spec["kind"] == "image" and spec["shape"][0] == 1:  # grey: (H, W) or (1, H, W)
            return item.ndim == 2 or item.ndim == 3 and item.shape[0] == 1
        return item.ndim == len(spec["shape"])
    return False


def _one(item: object, spec: dict) -> Tensor:
    if isinstance(item, (str, Path)):
        item = _read(Path(item), spec)
    if spec["kind"] == "tokens":
        return _tokens(item, spec)
    array = torch.as_tensor(np.asarray(item)) if not isinstance(item, Tensor) else item
    shape, given = tuple(spec["shape"]), tuple(array.shape)
    if spec["kind"] == "image" and shape[0] == 1 and array.dim() == 2:
        array = array[None]
    if tuple(array.shape) != shape:
        raise ZooError(f"expects {_describe(spec)}, got shape {given}")
    if spec["kind"] == "image" and array.dtype == torch.uint8:
        array = array.float() / 255
    return array.to(getattr(torch, spec["dtype"]))


def _tokens(item: object, spec: dict) -> Tensor:
    ids = [int(t) for t in item]
    length, vocab, pad = spec["shape"][0], spec["vocab_size"], spec.get("pad_id", 0)
    if not ids or len(ids) > length:
        raise ZooError(f"expects {_describe(spec)}, got {len(ids)} token ids")
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        raise ZooError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
    return torch.tensor(ids + [pad] * (length - len(ids)), dtype=torch.int64)


def _read(path: Path, spec: dict) -> object:
    """An image or .npy file as an array the spec can take (images converted and resized to it)."""
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ZooError(f"{path}: not a readable .npy array: {exc}") from None
    if path.suffix.lower() not in IMAGE_FILES:
        raise ZooError(f"{path}: not an image ({', '.join(IMAGE_FILES)}) or a .npy array")
    if spec["kind"] != "image":
        raise ZooError(f"{path}: the model takes {_describe(spec)}, not images")
    try:
        from PIL import Image
    except ImportError:
        raise ZooError("reading images needs Pillow: pip install 'zoo[images]'") from None
    channels, height, width = spec["shape"]
    try:
        with Image.open(path) as image:
            image = image.convert(spec.get("mode", "L" if channels == 1 else "RGB"))
    except OSError as exc:
        raise ZooError(f"{path}: cannot decode the image: {exc}") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    pixels = np.array(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy()
