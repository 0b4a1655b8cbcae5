"""Predictions on raw input: image files, arrays, token lists, single or batched, turned into what the
model expects by the input spec its weights record, then the recipe's evaluation transforms. Every
input is untrusted: its size is bounded before it is decoded (image pixels, .npy elements), and
nothing here builds a dataset or reaches the network."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from zoo.weights.spec import InputSpec, InputStats, Preprocess
from zoo.assembly.parts import transforms
from zoo.assembly.transforms import Pipeline
from zoo.errors import ZooError
from zoo.names import install
from zoo.registry import Registry
from zoo.recipe.nodes import transform_nodes
from zoo.weights.load import assembler, loaded

IMAGE_FILES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # of an image file, before it is decoded (ZOO_MAX_IMAGE_PIXELS raises it)
MAX_BATCH = 4096  # inputs in one call
NUMERIC = "biuf"  # numpy dtype kinds an input may have: bool, int, unsigned, float


@dataclass(frozen=True)
class Facts:
    """What predicting with a model needs to know, from its weights' metadata."""

    spec: InputSpec
    classes: tuple[str, ...] | None
    transform: Pipeline | None  # the recipe's evaluation transforms
    stats: InputStats | None = None  # of the training inputs


def facts(model: nn.Module, registry: Registry) -> Facts:
    """The input spec, class names and evaluation transforms of a model from ``zoo.load``, all as its
    weights file records them (its recipe is not needed: a file whose recipe this zoo's schema
    refuses can still predict)."""
    meta, source = loaded(model)
    if meta.input is None:
        raise ZooError(f"{source.path}: records no input spec (what one input is), so raw input cannot "
                       "be made into model input; build it again with this zoo")
    pipeline = transforms(assembler(meta, registry), transform_nodes(meta.transform, source.path))
    return Facts(meta.input, meta.classes, pipeline, meta.input_stats)


def prepare(inputs: object, spec: InputSpec) -> Tensor:
    """A batch of model inputs from ``inputs``: an image file, a .npy file, an array or tensor, a list
    of token ids, nested lists of numbers (whole numbers are 8-bit pixels for an image model), or a
    list of any of these. ZooError says what does not fit the spec."""
    if spec.kind != "tokens" and isinstance(inputs, (list, tuple)) and inputs and (
            all(isinstance(item, (list, tuple)) for item in inputs)
            or spec.kind == "tensor" and all(isinstance(item, (int, float)) for item in inputs)):
        inputs = _nested(inputs, spec, MAX_BATCH)
    if _single(inputs, spec):
        return _one(inputs, spec)[None]
    if isinstance(inputs, Sequence) and inputs and all(isinstance(t, (int, np.integer)) for t in inputs):
        raise ZooError(f"the model takes {spec.describe()}, not token ids")
    if isinstance(inputs, (np.ndarray, Tensor)) and inputs.ndim != len(spec.shape) + 1:
        raise ZooError(f"expects {spec.describe()}, got an array of shape {tuple(inputs.shape)}")
    if not isinstance(inputs, (Sequence, np.ndarray, Tensor)) or isinstance(inputs, (str, bytes)):
        raise ZooError(f"expects {spec.describe()}, or a list of them; got {type(inputs).__name__}")
    if len(inputs) > MAX_BATCH:
        raise ZooError(f"{len(inputs):,} inputs in one call; at most {MAX_BATCH:,}")
    items = list(inputs)
    if not items:
        raise ZooError("no inputs")
    return torch.stack([_one(item, spec) for item in items])


def predict(model: nn.Module, inputs: object, top_k: int = 5, *, known: Facts) -> list[dict]:
    """Predictions for ``inputs`` (see :func:`prepare`), one dict per input: for a classifier ``top``,
    the ``top_k`` classes as ``{"label", "index", "probability"}``; for a sequence model ``tokens``
    and ``probabilities`` per real position; otherwise ``values``. An input far outside the training
    inputs (an inverted image, say) gets a ``warning`` saying so."""
    check_top_k(top_k)
    x = prepare(inputs, known.spec)
    return interpret(forward(model, x, known), x, top_k, known)


def check_top_k(top_k: object) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ZooError(f"top-k must be a positive whole number, got {top_k!r}")
    return top_k


def forward(model: nn.Module, x: Tensor, known: Facts) -> Tensor:
    """The model's float output for a batch from :func:`prepare`, the evaluation transforms applied."""
    device = next(model.parameters()).device
    x = x.to(device)
    try:
        if known.transform is not None:
            x, _ = known.transform(x, torch.zeros(len(x), device=device), None)
        with torch.no_grad():
            return model(x).float().cpu()
    except (ZooError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ZooError(f"the model fails on input of shape {tuple(x.shape)}, which its weights file declares "
                       f"({known.spec.describe()}): {first}") from None


def interpret(out: Tensor, x: Tensor, top_k: int, known: Facts) -> list[dict]:
    """One prediction dict per row of ``out``, the output of :func:`forward` for the inputs ``x``."""
    if known.spec.kind == "tokens" and out.dim() == 3:
        probabilities, tokens = out.softmax(-1).max(-1)
        real = x != known.spec.pad_id
        results = [{"tokens": t[r].tolist(), "probabilities": p[r].tolist()}
                   for t, p, r in zip(tokens, probabilities, real)]
    elif out.dim() == 2 and (known.classes or out.shape[-1] > 1):
        probabilities = out.softmax(-1)
        best = probabilities.topk(min(top_k, out.shape[-1]), dim=-1)
        results = [{"top": [{"label": _label(known.classes, i), "index": i, "probability": p}
                            for i, p in zip(indices.tolist(), values.tolist())]}
                   for values, indices in zip(best.values, best.indices)]
    else:
        results = [{"values": row.reshape(-1).tolist()} for row in out]
    warnings = [_surprise(known, one) for one in x]
    return [{**result, "warning": warning} if warning else result for result, warning in zip(results, warnings)]


def _surprise(known: Facts, x: Tensor) -> str | None:
    if known.stats is None or known.spec.kind == "tokens":
        return None
    low, high = known.spec.range or (0.0, 1.0)
    return known.stats.surprise(x, low, high)


def _label(classes: Sequence[str] | None, index: int) -> str:
    return classes[index] if classes and index < len(classes) else str(index)


def _single(item: object, spec: InputSpec) -> bool:
    """Whether ``item`` is one input rather than a list of them."""
    if isinstance(item, (str, Path)):
        return True
    if spec.kind == "tokens":
        return isinstance(item, Sequence) and all(isinstance(t, (int, np.integer)) for t in item) or (
            isinstance(item, (np.ndarray, Tensor)) and item.ndim == 1)
    if isinstance(item, (np.ndarray, Tensor)):
        if spec.kind == "image" and spec.shape[0] == 1:  # grey: (H, W) or (1, H, W)
            return item.ndim == 2 or item.ndim == 3 and item.shape[0] == 1
        return item.ndim == len(spec.shape)
    return False


def _one(item: object, spec: InputSpec) -> Tensor:
    if isinstance(item, (str, Path)):
        item = _read(Path(item), spec)
    if spec.kind == "tokens":
        return _tokens(item, spec)
    if isinstance(item, (list, tuple)):
        item = _nested(item, spec)
    if not isinstance(item, (np.ndarray, Tensor)):
        raise ZooError(f"expects {spec.describe()}, got {type(item).__name__}")
    if isinstance(item, np.ndarray) and item.dtype.kind not in NUMERIC:
        raise ZooError(f"expects numbers, got an array of dtype {item.dtype}")
    array = torch.as_tensor(item)
    given = tuple(array.shape)
    if spec.kind == "image" and spec.shape[0] == 1 and array.dim() == 2:
        array = array[None]
    if tuple(array.shape) != spec.shape:
        raise ZooError(f"expects {spec.describe()}, got shape {given}")
    if spec.kind == "image" and array.dtype == torch.uint8:
        array = array.float() / 255
    array = array.to(getattr(torch, spec.dtype))
    if spec.preprocess is not None:  # pixels in [0, 1] become what the library fed its model
        array = _torchvision().transforms.functional.normalize(array, list(spec.preprocess.mean),
                                                              list(spec.preprocess.std))
    return array


def _nested(item: list | tuple, spec: InputSpec, count: int = 1) -> np.ndarray:
    """Nested lists of numbers (JSON) as an array of at most ``count`` inputs of the spec."""
    try:
        array = np.asarray(item)
    except (ValueError, TypeError) as exc:
        raise ZooError(f"expects {spec.describe()} as nested lists of numbers: {exc}") from None
    if array.size > count * math.prod(spec.shape) or array.dtype.kind not in NUMERIC:
        raise ZooError(f"expects {spec.describe()} as nested lists of numbers, got {array.dtype} of shape {array.shape}")
    if spec.kind == "image" and array.dtype.kind in "iu":  # whole numbers are 8-bit pixels, as in a .npy
        if array.size and not 0 <= array.min() <= array.max() <= 255:
            raise ZooError(f"whole-number pixels are 0 to 255, got {array.min()} to {array.max()}; "
                           f"give scaled pixels as floats ({spec.describe()})")
        array = array.astype(np.uint8)
    return array


def _tokens(item: object, spec: InputSpec) -> Tensor:
    length, vocab = spec.shape[0], spec.vocab_size
    if isinstance(item, (np.ndarray, Tensor)):
        item = item.tolist()
    if not isinstance(item, (list, tuple)) or not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                                                      for t in item):
        raise ZooError(f"expects {spec.describe()}, got {type(item).__name__}")
    ids = [int(t) for t in item]
    if not ids or len(ids) > length:
        raise ZooError(f"expects {spec.describe()}, got {len(ids)} token ids")
    bad = [t for t in ids if not 0 <= t < vocab]
    if bad:
        raise ZooError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
    return torch.tensor(ids + [spec.pad_id] * (length - len(ids)), dtype=torch.int64)


def _read(path: Path, spec: InputSpec) -> object:
    """An image or .npy file as an array the spec can take (images converted and resized to it)."""
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        return read_npy(path, math.prod(spec.shape))
    if path.suffix.lower() not in IMAGE_FILES:
        raise ZooError(f"{path}: not an image ({', '.join(IMAGE_FILES)}) or a .npy array")
    if spec.kind != "image":
        raise ZooError(f"{path}: the model takes {spec.describe()}, not images")
    with open(path, "rb") as f:
        return decode_image(f, spec, str(path))


def read_npy(source: Path | object, elements: int) -> np.ndarray:
    """A .npy array of numbers (a path or a binary file object) of at most ``elements`` elements, its
    header checked before any data is read: no pickled objects, strings or records."""
    with open(source, "rb") if isinstance(source, (str, Path)) else contextlib.nullcontext(source) as f:
        try:
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in header:
                raise ValueError(f".npy format version {version} (1.0 and 2.0 are read)")
            shape, fortran, dtype = header[version](f)
        except (ValueError, OSError, SyntaxError, TypeError) as exc:
            raise ZooError(f"{_name(source)}: not a readable .npy array ({exc})") from None
        if dtype.kind not in NUMERIC or dtype.fields is not None or dtype.hasobject:
            raise ZooError(f"{_name(source)}: holds {dtype} values; a model input is numbers (bool, int or float)")
        count = math.prod(shape)
        if count > elements:
            raise ZooError(f"{_name(source)}: claims shape {shape} ({count:,} values); one input has {elements:,}")
        data = f.read(count * dtype.itemsize + 1)
    if len(data) != count * dtype.itemsize:
        raise ZooError(f"{_name(source)}: its data does not match its shape {shape} and dtype {dtype}")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def decode_image(file: object, spec: InputSpec, name: str, max_pixels: int | None = None) -> np.ndarray:
    """An image file (a binary file object) as a (channels, height, width) uint8 array in the spec's
    mode and size (resized and cropped as its ``preprocess`` says, else resized), its pixel count
    checked before it is decoded (against ``max_pixels``, else ZOO_MAX_IMAGE_PIXELS, else 40 million)."""
    from PIL import Image

    channels, height, width = spec.shape
    image = open_image(file, spec.mode or ("L" if channels == 1 else "RGB"), name, max_pixels)
    if spec.preprocess is not None:
        image = _geometry(spec.preprocess)(image)
    elif image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    return pixels(image)


def pixels(image) -> np.ndarray:
    """A Pillow image as a (channels, height, width) uint8 array."""
    array = np.array(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def open_image(file: object, mode: str, name: str, max_pixels: int | None = None):
    """An image file (a binary file object) decoded by Pillow into ``mode`` ("L", "RGB"), its pixel
    count checked first (see :func:`decode_image`)."""
    try:
        from PIL import Image
    except ImportError:
        raise ZooError(f"reading images needs Pillow: {install('images')}") from None
    limit = max_pixels or int(os.environ.get("ZOO_MAX_IMAGE_PIXELS") or MAX_PIXELS)
    pillows_own = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # zoo's bound, checked below from the header, is the one that holds
    try:
        with Image.open(file) as image:
            if image.width * image.height > limit:
                raise ZooError(f"{name}: the image is {image.width} x {image.height} pixels, more than "
                               f"{limit:,} (ZOO_MAX_IMAGE_PIXELS raises the bound)")
            return image.convert(mode)
    except ZooError:
        raise
    except Image.UnidentifiedImageError:
        raise ZooError(f"{name}: not an image zoo can read (PNG, JPEG, BMP, GIF, WebP, TIFF)") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        said = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>", "the file", str(exc))  # never a Python object's repr
        raise ZooError(f"{name}: cannot decode the image: {said}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillows_own


@functools.lru_cache(maxsize=16)
def _geometry(preprocess: Preprocess):
    """torchvision's Resize and CenterCrop as ``preprocess`` records them: what timm's and
    torchvision's evaluation transforms do to a decoded image, pixel for pixel."""
    transforms = _torchvision().transforms
    size = list(preprocess.resize) if len(preprocess.resize) == 2 else preprocess.resize[0]
    return transforms.Compose([transforms.Resize(size, transforms.InterpolationMode(preprocess.interpolation)),
                               transforms.CenterCrop(list(preprocess.crop))])


def _torchvision():
    try:
        import torchvision
    except ImportError:
        raise ZooError(f"this model's preprocessing (resize, crop, normalize) is torchvision's: "
                       f"{install('torchvision')}") from None
    return torchvision


def _name(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else "the .npy data"
