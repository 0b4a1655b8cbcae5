"""Losses, called as ``loss(prediction, target)`` and returning the mean over samples."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class CrossEntropy(nn.Module):
    """Mean cross-entropy of logits against class ids; logits (..., classes), targets (...)."""

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = -100):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


def mse() -> nn.Module:
    """Mean squared error over all elements."""
    return nn.MSELoss()
