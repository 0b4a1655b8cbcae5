"""Layers of the example plugin."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GatedLinear(nn.Module):
    """Gated linear unit: (x W + b) * sigmoid(x V + c), from in_features to out_features (Dauphin et al., 2017)."""

    example = {"input": [8, 2]}  # what zoo.testing.check_component feeds it

    def __init__(self, in_features: int = 2, out_features: int = 64):
        super().__init__()
        self.value = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.value(x) * torch.sigmoid(self.gate(x))


def glu_net(in_features: int = 2, hidden: int = 64, depth: int = 2, classes: int = 2) -> nn.Sequential:
    """``depth`` gated-linear layers of width ``hidden``, then a linear classifier."""
    widths = [in_features] + [hidden] * depth
    return nn.Sequential(*(GatedLinear(a, b) for a, b in zip(widths, widths[1:])), nn.Linear(hidden, classes))


glu_net.example = {"params": {"hidden": 16}, "input": [8, 2]}
