"""The dataset interface the trainer relies on: (input, target) pairs held as two tensors."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset


def to_unit_interval(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [0, 1]."""
    return images.to(torch.float32).div_(255)


class InMemoryDataset(Dataset):
    """Map-style dataset over two tensors; ``transform`` turns stored inputs into model inputs per batch.

    ``tensors()`` and ``batch()`` let the trainer slice whole batches instead of calling
    ``__getitem__`` once per sample.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        transform: Callable[[Tensor], Tensor] | None = None,
        info: dict | None = None,
    ):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.transform = transform
        self.info = info or {}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.batch(index)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The stored inputs and targets (inputs before ``transform``)."""
        return self.inputs, self.targets

    def batch(self, index: int | slice | Tensor) -> tuple[Tensor, Tensor]:
        """Model-ready inputs and targets at ``index`` (an int, a slice or a tensor of indices)."""
        x = self.inputs[index]
        return (self.transform(x) if self.transform else x), self.targets[index]

    def __repr__(self) -> str:
        return f"InMemoryDataset({len(self)} x {tuple(self.inputs.shape[1:])}, {self.info.get('name', '')})"
