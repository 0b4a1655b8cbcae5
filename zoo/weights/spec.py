"""What one model input is, as a weights file records it: :class:`InputSpec` (kind, shape, dtype,
and for images their mode and range), :class:`InputStats` of the training inputs, and how both are
read off a dataset (its ``info["input"]`` declaration, else its first sample). The weights layer
owns them: a file's record needs nothing of the assembly layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from zoo import typed


MAX_INPUT_ELEMENTS = 1 << 26  # in one input a spec may declare (a 4096 x 4096 RGB image is 50M)


INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a model input, as the library that made the weights does it in
    evaluation (timm's ``create_transform``, torchvision's ``weights.transforms()``): resize (the
    shorter side to ``resize[0]``, or to ``resize`` = (height, width)), crop the centre to ``crop``
    (height, width), scale 8-bit pixels to [0, 1], subtract ``mean`` and divide by ``std`` per channel.
    zoo applies it with torchvision's own transforms, so the pixels match the library's."""

    resize: tuple[int, ...]
    interpolation: Literal["nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"]
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        sizes = (*self.resize, *self.crop)
        if len(self.resize) not in (1, 2) or len(self.crop) != 2 or not all(0 < n <= 16384 for n in sizes):
            raise ValueError(f"resize {list(self.resize)} (1 or 2 sizes) and crop {list(self.crop)} (2 sizes) must "
                             "be sizes from 1 to 16384")
        if len(self.mean) != len(self.std) or not all(s > 0 and math.isfinite(s) for s in self.std) or not all(
                math.isfinite(m) for m in self.mean):
            raise ValueError("mean and std must be finite, one per channel, std positive")


@dataclass(frozen=True)
class InputSpec:
    """What one model input is: datasets declare it (``info["input"]``) and weights files record it,
    so predictions on raw input (images, arrays, token ids) need nothing else."""

    kind: Literal["image", "tokens", "tensor"]
    shape: tuple[int, ...]  # one sample's
    dtype: str  # a torch dtype's name: float32, int64 ...
    mode: str | None = None  # images: "L" (grey) or "RGB"
    range: tuple[float, float] | None = None  # images: the values 8-bit pixels / 255 take, [0.0, 1.0]
    vocab_size: int | None = None  # tokens: ids are in 0..vocab_size-1
    pad_id: int = 0  # tokens: what fills a sequence to its length
    preprocess: Preprocess | None = None  # images: resize, crop and normalize, as the weights' library does

    def __post_init__(self):
        if not self.shape or len(self.shape) > 8 or any(n < 1 for n in self.shape):
            raise ValueError(f"shape {list(self.shape)} must have 1 to 8 positive sizes")
        if math.prod(self.shape) > MAX_INPUT_ELEMENTS:
            raise ValueError(f"shape {list(self.shape)} has more than {MAX_INPUT_ELEMENTS:,} elements")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.kind == "image" and (len(self.shape) != 3 or self.mode not in ("L", "RGB")
                                     or self.shape[0] != (1 if self.mode == "L" else 3)):
            raise ValueError(f"an image input is (channels, height, width) with mode L (1 channel) or RGB (3), "
                             f"got shape {list(self.shape)} mode {self.mode!r}")
        if self.preprocess is not None and (self.kind != "image" or tuple(self.preprocess.crop) != self.shape[1:]
                                            or len(self.preprocess.mean) != self.shape[0]):
            raise ValueError(f"preprocessing is for images, its crop {list(self.preprocess.crop)} their height and "
                             f"width, with one mean and std per channel; the input is {self.kind} {list(self.shape)}")
        if self.kind == "tokens" and (len(self.shape) != 1 or not self.vocab_size or self.vocab_size < 1
                                      or not 0 <= self.pad_id < self.vocab_size):
            raise ValueError("a tokens input is (length,) with a positive vocab_size and a pad_id below it")

    @property
    def raw_dtype(self) -> str:
        """The numpy dtype of one raw input, before any scaling: images as 8-bit pixels (uint8), token
        ids as int64, other inputs their own dtype."""
        return {"image": "uint8", "tokens": "int64"}.get(self.kind, self.dtype)

    def describe(self) -> str:
        """The spec in words, for errors: 'an image of shape (1, 28, 28) (float32)'."""
        if self.kind == "tokens":
            return (f"token ids in 0..{self.vocab_size - 1}, at most {self.shape[0]} per input "
                    f"(padded with {self.pad_id})")
        what = "an image" if self.kind == "image" else "an input"
        return f"{what} of shape {self.shape} ({self.dtype})"


@dataclass(frozen=True)
class InputStats:
    """Per-channel statistics of the training inputs, in the units ``zoo predict`` takes them: each
    channel's mean and standard deviation over every value, and ``spread``, how much one input's own
    mean varies from input to input (the standard deviation of the per-input means)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    spread: tuple[float, ...]

    def __post_init__(self):
        if not len(self.mean) == len(self.std) == len(self.spread) or len(self.mean) > 64:
            raise ValueError("mean, std and spread must have one value per channel (at most 64)")

    def surprise(self, x: Tensor, low: float = 0.0, high: float = 1.0) -> str | None:
        """Why one input ``x`` (in these units) lies far outside the training inputs, or None: its
        per-channel mean more than SURPRISE spreads from theirs, and, when ``1 - x`` (an image
        between ``low`` and ``high``) would fit, that it looks inverted."""
        means = x.float().reshape(len(self.mean), -1).mean(-1).tolist()
        scale = [max(s, 0.05 * d, 1e-6) for s, d in zip(self.spread, self.std)]
        far = [abs(m - t) / s for m, t, s in zip(means, self.mean, scale)]
        if max(far) <= SURPRISE:
            return None
        flipped = [abs(low + high - m - t) / s for m, t, s in zip(means, self.mean, scale)]
        if max(flipped) <= SURPRISE:
            dark = sum(self.mean) / len(self.mean) < (low + high) / 2
            return ("input looks inverted relative to the training data (they are "
                    f"{'light on a dark' if dark else 'dark on a light'} background)")
        return (f"input lies far outside the training data: its mean {max(means):.3g} is {max(far):.0f} spreads from "
                f"theirs ({max(self.mean):.3g}); the prediction may mean little")


SURPRISE = 6.0  # spreads (standard deviations of the training inputs' means) an input's mean may be away


def input_stats(data: object, spec: InputSpec, samples: int = 10_000) -> InputStats | None:
    """The statistics of up to ``samples`` training inputs of ``data`` (images and float tensors; None
    for token ids)."""
    if spec.kind == "tokens" or not hasattr(data, "batch"):
        return None
    x = data.batch(torch.arange(min(samples, len(data))))[0]
    if not x.is_floating_point() and spec.kind != "image":
        return None
    x = x.float() / 255 if spec.kind == "image" and not x.is_floating_point() else x.float()
    channels = x.shape[1] if spec.kind == "image" else 1
    values = x.reshape(len(x), channels, -1)
    per_input = values.mean(-1)
    std, mean = torch.std_mean(values.transpose(0, 1).reshape(channels, -1), dim=-1)
    return InputStats(tuple(mean.tolist()), tuple(std.tolist()), tuple(per_input.std(0).tolist()))


# The dtypes an input may have (what a .npy or a request may carry, and the model takes).
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


def input_spec(data: object) -> InputSpec:
    """What one model input of ``data`` is: the spec its ``info["input"]`` declares, else what its
    first sample shows (a "tensor" of that shape and dtype)."""
    declared = getattr(data, "info", {}).get("input")
    if declared:
        name = getattr(data, "info", {}).get("name", type(data).__name__)
        return typed.read(InputSpec, dict(declared), f"the input spec of dataset {name}")
    x = data.batch(torch.arange(1))[0][0] if hasattr(data, "batch") else torch.as_tensor(data[0][0])
    return InputSpec("tensor", tuple(x.shape), str(x.dtype).removeprefix("torch."))
