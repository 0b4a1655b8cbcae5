"""LR schedules stepped once per optimizer step; ``optimizer`` and ``total_steps`` come from the trainer."""

from __future__ import annotations

import math

import torch


def cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0):
    """Linear warm-up over warmup_steps, then cosine decay to min_lr_ratio x the base LR."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, max_lr: float = 1e-3, pct_start: float = 0.3):
    """One-cycle policy (Smith, 2018): LR rises to max_lr over pct_start of training, then anneals."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start, cycle_momentum=False
    )
