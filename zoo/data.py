"""The dataset interface the trainer relies on: (input, target) pairs held as two tensors, and what
one model input is (its spec), which trained weights record."""

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


def input_spec(data: Dataset) -> dict:
    """What one model input of ``data`` is: the spec its ``info["input"]`` declares, else what its
    first sample shows. Keys: ``kind`` ("image", "tokens" or "tensor"), ``shape`` (one sample's),
    ``dtype``; images add ``mode`` ("L" grey, "RGB") and ``range`` ([0.0, 1.0]: pixels / 255);
    tokens add ``vocab_size`` and ``pad_id``."""
    declared = getattr(data, "info", {}).get("input")
    if declared:
        return dict(declared)
    x = data.batch(torch.arange(1))[0][0] if hasattr(data, "batch") else torch.as_tensor(data[0][0])
    return {"kind": "tensor", "shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
