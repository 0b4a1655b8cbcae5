"""Datasets of the example plugin."""

from __future__ import annotations

import math
from typing import Literal

import torch

from zoo.api import InMemoryDataset


def two_spirals(n: int = 2000, turns: float = 1.5, noise: float = 0.05, seed: int = 0,
                split: Literal["train", "test"] = "train") -> InMemoryDataset:
    """Two interleaved spirals in the plane, n points, class 0 or 1; each split from its own seeded stream."""
    generator = torch.Generator().manual_seed(seed * 2 + (split == "test"))
    labels = torch.randint(0, 2, (n,), generator=generator)
    radius = torch.rand(n, generator=generator)
    angle = radius * turns * 2 * math.pi + labels * math.pi
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points += noise * torch.randn(n, 2, generator=generator)
    return InMemoryDataset(points, labels, info={"name": "two-spirals", "split": split})
