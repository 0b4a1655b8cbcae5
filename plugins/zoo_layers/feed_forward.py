"""The notebook's position-wise feed-forward block with LayerNorm."""

from __future__ import annotations

from torch import Tensor, nn


class FeedForward(nn.Module):
    """Linear(dim, dim*scale) -> ReLU -> Linear(dim*scale, dim) -> ReLU -> LayerNorm(dim)."""

    example = {"params": {"dim": 16, "scale": 2}, "input": [2, 5, 16]}  # for zoo.testing.check_component

    def __init__(self, dim: int = 312, scale: int = 4):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim * scale)
        self.relu_1 = nn.ReLU()
        self.linear2 = nn.Linear(dim * scale, dim)
        self.relu_2 = nn.ReLU()
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer_norm(self.relu_2(self.linear2(self.relu_1(self.linear1(x)))))
