"""The notebook's transformer encoder, with its three bugs fixed (see docs/notebook-differences.md).

1. Its mask had shape (B, 1, L, 1) and so masked query rows, never padded keys: here (B, 1, 1, L).
2. It applied one shared attention and one shared feed-forward ``n_layer`` times: here each layer
   has its own weights.
3. It built ``nn.Dropout`` inside ``forward``, always on: here dropout is a submodule, off in eval mode.
"""

from __future__ import annotations

from torch import Tensor, nn
from zoo_layers.attention import MultiHeadAttention
from zoo_layers.feed_forward import FeedForward
from zoo_layers.positional import PositionalEncoding


class EncoderLayer(nn.Module):
    """Self-attention -> dropout -> feed-forward block."""

    def __init__(self, dim: int, heads: int, scale: int, dropout: float):
        super().__init__()
        self.attention = MultiHeadAttention(dim, heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.feed_forward = FeedForward(dim, scale)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.feed_forward(self.dropout(self.attention(x, mask=mask)))


class TransformerEncoder(nn.Module):
    """Token embedding -> positional encoding -> ``layers`` x (attention -> dropout -> feed-forward).

    Input: token ids (batch, length), 0 = padding. Output: (batch, length, dim). Padded positions are
    masked as keys, so they never change the output at real positions. ``dropout`` applies to the
    attention and after it; ``position_dropout`` after the positional encoding (the notebook's 0.05).
    """

    zoo_blocks = ("layers.*",)  # what train.strategy fsdp shards one by one
    example = {"params": {"vocab_size": 16, "max_len": 12, "dim": 16, "heads": 2, "layers": 1}, "input": {"tokens": [2, 12], "vocab_size": 16}}  # for zoo.testing.check_component

    def __init__(
        self,
        vocab_size: int = 1024,
        max_len: int = 80,
        dim: int = 312,
        heads: int = 6,
        layers: int = 3,
        scale: int = 4,
        dropout: float = 0.1,
        position_dropout: float = 0.05,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.position = PositionalEncoding(dim, max_len, position_dropout)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, scale, dropout) for _ in range(layers))

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` (batch, length), 1 = real token, defaults to ``tokens != 0``."""
        keep = (tokens != 0) if mask is None else mask.bool()
        key_mask = keep[:, None, None, :]
        x = self.position(self.embedding(tokens))
        for layer in self.layers:
            x = layer(x, key_mask)
        return x
