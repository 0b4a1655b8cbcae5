"""Sinusoidal positional encoding (Vaswani et al., 2017), as in the reference notebook."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.api import ZooError


class PositionalEncoding(nn.Module):
    """Add sin/cos position codes (even dims sin, odd dims cos, wavelength 10000^(2i/d)), then dropout."""

    example = {"params": {"d_model": 16, "max_len": 10}, "input": [2, 7, 16]}  # for zoo.testing.check_component

    def __init__(self, d_model: int = 312, max_len: int = 80, dropout: float = 0.05):
        super().__init__()
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * frequency)
        pe[:, 1::2] = torch.cos(position * frequency[: d_model // 2])  # odd d_model has one cos column fewer
        # Derived from the shape alone, so kept out of the state dict and the weights files.
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        length = x.size(1)
        if length > self.max_len:
            raise ZooError(
                f"positional-encoding: input has {length} positions but max_len is {self.max_len}; "
                f"build it with max_len >= {length}"
            )
        return self.dropout(x + self.pe[:, :length])
