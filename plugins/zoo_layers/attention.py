"""Multi-head attention with separate query/key/value/output projections, as in the reference notebook."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.api import ZooError
from zoo_layers.heads import MergeHeads, SplitHeads


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over num_heads heads; mask 1 = attend, 0 = masked (probability 0).

    Called as ``(query, key, value, mask=None)``, or ``(x, mask=mask)`` for self-attention. The mask
    broadcasts to (batch, heads, query_len, key_len): (B, 1, 1, L) masks padded keys. A query whose
    keys are all masked gets a zero output. Dropout on the attention probabilities in training only.
    """

    example = {"params": {"embed_dim": 16, "num_heads": 4}, "input": [2, 5, 16]}  # for zoo.testing.check_component

    def __init__(self, embed_dim: int = 312, num_heads: int = 6, hidden_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden_dim = embed_dim if hidden_dim is None else hidden_dim
        if hidden_dim % num_heads:
            raise ZooError(
                f"multi-head-attention: hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}"
            )
        self.dropout = dropout
        self.query_proj = nn.Linear(embed_dim, hidden_dim)
        self.key_proj = nn.Linear(embed_dim, hidden_dim)
        self.value_proj = nn.Linear(embed_dim, hidden_dim)
        self.out_proj = nn.Linear(hidden_dim, embed_dim)
        self.split = SplitHeads(num_heads)
        self.merge = MergeHeads()

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        q = self.split(self.query_proj(query))
        k = self.split(self.key_proj(key))
        v = self.split(self.value_proj(value))
        attended = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=None if mask is None else mask.bool(),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(self.merge(attended))

    @torch.no_grad()
    def probabilities(self, query: Tensor, key: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """The attention probabilities, (batch, heads, query_len, key_len), that ``forward`` applies to the
        values (without dropout): masked keys get exactly 0, and a query with no visible key a row of 0s."""
        key = query if key is None else key
        q, k = self.split(self.query_proj(query)), self.split(self.key_proj(key))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask.bool(), float("-inf"))
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)
