"""Layers of the example plugin."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GatedLinear(nn.Module):
    """Gated linear unit: (x W + b) * sigmoid(x V + c), from in_features to out_features (Dauphin et al., 2017)."""

    def __init__(self, in_features: int = 2, out_features: int = 64):
        super().__init__()
        self.value = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.value(x) * torch.sigmoid(self.gate(x))
