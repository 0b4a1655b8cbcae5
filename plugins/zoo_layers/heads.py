"""Splitting the feature dimension into attention heads and back, with einops."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from zoo.api import ZooError


class SplitHeads(nn.Module):
    """Reshape (batch, length, heads*d) to (batch, heads, length, d): einops 'b l (h d) -> b h l d'."""

    example = {"params": {"heads": 4}, "input": [2, 5, 16]}  # for zoo.testing.check_component

    def __init__(self, heads: int = 8):
        super().__init__()
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.heads:
            raise ZooError(
                f"split-heads: width {x.shape[-1]} is not divisible by heads={self.heads}; "
                f"choose heads among the divisors of {x.shape[-1]}"
            )
        return rearrange(x, "b l (h d) -> b h l d", h=self.heads)


class MergeHeads(nn.Module):
    """Inverse of split-heads: (batch, heads, length, d) to (batch, length, heads*d)."""

    example = {"input": [2, 4, 5, 4]}  # for zoo.testing.check_component

    def __init__(self):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return rearrange(x, "b h l d -> b l (h d)")
