"""Generated datasets of the reference notebook, seeded and reproducible."""

from __future__ import annotations

from typing import Literal

import torch

from zoo.api import InMemoryDataset

# Each split draws from its own stream: seed * 2 + offset never collides across seeds.
SPLIT_OFFSET = {"train": 0, "test": 1}
IGNORE = -100  # target value losses skip (cross-entropy's ignore_index)


def _generator(seed: int, split: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 2 + SPLIT_OFFSET[split])


def synthetic_regression(
    n: int = 1000,
    in_features: int = 3,
    out_features: int = 5,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
) -> InMemoryDataset:
    """The notebook's regression set: standard-normal inputs (n, in) and independent targets (n, out)."""
    g = _generator(seed, split)
    inputs = torch.randn(n, in_features, generator=g)
    targets = torch.randn(n, out_features, generator=g)
    return InMemoryDataset(inputs, targets, info={"name": "synthetic-regression", "split": split})


def random_tokens(
    n: int = 1000,
    seq_len: int = 80,
    vocab_size: int = 1024,
    min_len: int = 1,
    seed: int = 0,
    split: Literal["train", "test"] = "train",
    task: Literal["copy", "reverse"] = "copy",
) -> InMemoryDataset:
    """Token ids in [1, vocab_size) followed by 0-padding of random length; per-token targets.

    Each sequence has a real length drawn uniformly from [min_len, seq_len]. ``task`` sets the target
    at each real position: ``copy`` the token itself, ``reverse`` the token at the mirrored position.
    Padded positions have target -100, which cross-entropy ignores.
    """
    g = _generator(seed, split)
    lengths = torch.randint(min_len, seq_len + 1, (n, 1), generator=g)
    tokens = torch.randint(1, vocab_size, (n, seq_len), generator=g)
    position = torch.arange(seq_len)
    real = position < lengths
    tokens[~real] = 0
    if task == "reverse":
        targets = tokens.gather(1, (lengths - 1 - position).clamp(min=0))
    else:
        targets = tokens.clone()
    targets[~real] = IGNORE
    spec = {"kind": "tokens", "shape": [seq_len], "dtype": "int64", "vocab_size": vocab_size, "pad_id": 0}
    return InMemoryDataset(tokens, targets, info={"name": "random-tokens", "split": split, "task": task, "input": spec})
