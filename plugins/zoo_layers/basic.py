"""Thin, typed factories over torch.nn's standard layers (defaults from the reference notebook)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def linear(in_features: int = 10, out_features: int = 5, bias: bool = True) -> nn.Module:
    """Affine map y = x W^T + b over the last dimension."""
    return nn.Linear(in_features, out_features, bias=bias)


def relu() -> nn.Module:
    """Rectified linear unit, max(x, 0), element-wise."""
    return nn.ReLU()


def flatten(start_dim: int = 1, end_dim: int = -1) -> nn.Module:
    """Flatten dimensions start_dim..end_dim into one (keeps the batch dimension by default)."""
    return nn.Flatten(start_dim, end_dim)


def dropout(p: float = 0.1) -> nn.Module:
    """Zero each element with probability p in training mode; identity in eval mode."""
    return nn.Dropout(p)


def layer_norm(normalized_shape: int | Sequence[int] = 312, eps: float = 1e-5, elementwise_affine: bool = True) -> nn.Module:
    """Normalize over the trailing dimensions to zero mean and unit variance, then scale and shift."""
    return nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine)


def embedding(num_embeddings: int = 1024, embedding_dim: int = 312, padding_idx: int | None = None) -> nn.Module:
    """Lookup table mapping token ids to learned vectors."""
    return nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)


def sequential(layers: Sequence[nn.Module] = ()) -> nn.Module:
    """Apply layers in order, each to the output of the one before."""
    return nn.Sequential(*layers)


# What zoo.testing.check_component builds each on, and feeds it.
linear.example = {"input": [4, 10]}
relu.example = {"input": [4, 10]}
flatten.example = {"input": [2, 3, 4]}
dropout.example = {"input": [4, 10]}
layer_norm.example = {"params": {"normalized_shape": 16}, "input": [2, 5, 16]}
embedding.example = {"params": {"num_embeddings": 50, "embedding_dim": 8}, "input": {"tokens": [2, 6], "vocab_size": 50}}
sequential.example = {"input": [4, 10]}
