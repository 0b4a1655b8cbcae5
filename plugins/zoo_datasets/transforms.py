"""Built-in transforms: whole-batch tensor operations on the device, no per-sample Python.

Image transforms take inputs (N, ..., H, W) (MNIST's are (N, 1, 28, 28)); token transforms take
integer token ids (N, T). Each random choice is made per sample from the batch's generator, and
with no generator (evaluation) the augmentations return the batch unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.api import Transform, ZooError


def normalize(mean: float | list[float], std: float | list[float]) -> Transform:
    """Subtract ``mean`` and divide by ``std``, per channel (dimension 1) when they are lists.

    As torchvision's Normalize, on a batch."""
    values = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    if (values[1] == 0).any():
        raise ZooError(f"std must not be 0, got {std}")

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        channels = values[0].numel()
        if values[0].dim() and (x.dim() < 2 or x.shape[1] != channels):
            raise ZooError(f"{channels} means and stds for inputs of shape {tuple(x.shape[1:])}, "
                           f"whose dimension 1 has {x.shape[1] if x.dim() > 1 else 'no'} channels")
        shape = (-1, *[1] * (x.dim() - 2)) if values[0].dim() else ()
        m, s = (v.to(x.device, x.dtype).reshape(shape) for v in values)  # a few bytes; no cache to outlive a trace
        return (x - m) / s, y

    return apply


def random_shift(pad: int = 2) -> Transform:
    """Shift each image by up to ``pad`` pixels in each direction, filling with zeros.

    A random crop of the zero-padded image at its own size (torchvision's RandomCrop(size, padding=pad))."""
    if pad < 0:
        raise ZooError(f"pad must be >= 0, got {pad}")

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None or pad == 0:
            return x, y
        _spatial(x)
        n, (h, w) = len(x), x.shape[-2:]
        planes = F.pad(x.reshape(n, -1, h, w), (pad, pad, pad, pad))
        c = planes.shape[1]
        top, left = (torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=x.device) for _ in range(2))
        rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * pad)
        cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
        return planes.gather(2, rows).gather(3, cols).reshape(x.shape), y

    return apply


def horizontal_flip(p: float = 0.5) -> Transform:
    """Mirror each image left to right with probability ``p``."""
    _probability(p)

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None:
            return x, y
        _spatial(x)
        flip = torch.rand(len(x), generator=generator, device=x.device) < p
        return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x), y

    return apply


def random_erasing(p: float = 0.5, scale: tuple[float, float] = (0.02, 0.33),
                   ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> Transform:
    """Blank out a random rectangle of each image, with probability ``p``.

    The rectangle is set to ``value``; its area is a uniform share of the image in ``scale`` and its
    aspect ratio log-uniform in ``ratio`` (Zhong et al. 2017, as torchvision's RandomErasing; the
    rectangle is clipped to the image instead of redrawn)."""
    _probability(p)
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise ZooError(f"scale must satisfy 0 < low <= high <= 1 and ratio 0 < low <= high, got {scale}, {ratio}")

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None:
            return x, y
        _spatial(x)
        n, (h, w), device = len(x), x.shape[-2:], x.device

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, device=device)

        erase = uniform(0, 1) < p
        area = uniform(*scale) * h * w
        aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
        height = torch.sqrt(area * aspect).round().clamp(1, h)
        width = torch.sqrt(area / aspect).round().clamp(1, w)
        top = (uniform(0, 1) * (h - height + 1)).floor()
        left = (uniform(0, 1) * (w - width + 1)).floor()
        rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
        inside_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])
        inside_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])
        mask = (inside_rows[:, :, None] & inside_cols[:, None, :]) & erase[:, None, None]
        return x.masked_fill(mask.view(n, *[1] * (x.dim() - 3), h, w), value), y

    return apply


def token_dropout(p: float = 0.1, mask_id: int = 0, pad_id: int = 0) -> Transform:
    """Mask each token (not padding) with probability ``p``.

    Token ids other than ``pad_id`` become ``mask_id``; the targets stay, so the model learns to fill
    in from context."""
    _probability(p)

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None:
            return x, y
        if x.is_floating_point():
            raise ZooError(f"expects integer token ids, got {x.dtype} inputs")
        drop = (torch.rand(x.shape, generator=generator, device=x.device) < p) & (x != pad_id)
        return x.masked_fill(drop, mask_id), y

    return apply


def _probability(p: float) -> None:
    if not 0 <= p <= 1:
        raise ZooError(f"p must be a probability in [0, 1], got {p}")


def _spatial(x: Tensor) -> None:
    if x.dim() < 3:
        raise ZooError(f"expects images (N, ..., height, width), got inputs of shape {tuple(x.shape)}")


def random_resized_crop(scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Transform:
    """Cut a random part of each image (``scale``: its share of the area, ``ratio``: its aspect) and
    resize it back to the image's size, as torchvision's RandomResizedCrop chooses the box (up to ten
    tries, else the centre), with torchvision.transforms.v2's resized_crop (bilinear, antialiased).

    The training augmentation of timm's and torchvision's ImageNet recipes."""
    if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
        raise ZooError(f"scale must be 0 < low <= high <= 1 and ratio 0 < low <= high, got {scale} and {ratio}")
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def box(h: int, w: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        area = h * w
        for _ in range(10):
            u = torch.rand(4, generator=generator, device=generator.device).tolist()
            target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1)), ch, cw
        side = min(h, w)
        return (h - side) // 2, (w - side) // 2, side, side

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None:
            return x, y
        _spatial(x)
        from torchvision.transforms.v2 import functional as TF

        h, w = x.shape[-2:]
        return torch.stack([TF.resized_crop(one, *box(h, w, generator), [h, w], antialias=True) for one in x]), y

    return apply
