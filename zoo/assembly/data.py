"""The dataset interface the trainer relies on: (input, target) pairs held as two tensors."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class InMemoryDataset(Dataset):
    """Map-style dataset over two tensors. With ``divide_by``, stored inputs (e.g. uint8 pixels) become
    float32 ``inputs / divide_by`` per batch, so the data stays compact in memory.

    ``tensors()`` and ``batch()`` let the trainer slice whole batches instead of calling
    ``__getitem__`` once per sample.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, divide_by: float | None = None, info: dict | None = None):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.divide_by = divide_by
        self.info = info or {}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.batch(index)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The stored inputs and targets (inputs before ``divide_by``)."""
        return self.inputs, self.targets

    def batch(self, index: int | slice | Tensor) -> tuple[Tensor, Tensor]:
        """Model-ready inputs and targets at ``index`` (an int, a slice or a tensor of indices)."""
        x = self.inputs[index]
        return (x if self.divide_by is None else torch.div(x, self.divide_by)), self.targets[index]

    def __repr__(self) -> str:
        return f"InMemoryDataset({len(self)} x {tuple(self.inputs.shape[1:])}, {self.info.get('name', '')})"
