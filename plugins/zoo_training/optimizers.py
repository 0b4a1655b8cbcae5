"""Typed factories over torch.optim; ``params`` is supplied by the trainer."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(
    params: Iterable,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba, 2015); L2 penalty added to the gradient when weight_decay > 0."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


def adamw(
    params: Iterable,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


def sgd(
    params: Iterable,
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
