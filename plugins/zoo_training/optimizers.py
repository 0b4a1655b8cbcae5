"""Typed factories over torch.optim; ``params`` is supplied by the trainer."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch


def _fused(make, params: Iterable, fused: bool | None) -> torch.optim.Optimizer:
    """Build with the fused kernel unless told otherwise; fall back where the device has none, or the
    parameters are sharded (FSDP's DTensors: fused SGD has no sharded kernel)."""
    params = list(params)
    if fused is None and _sharded(params):
        return make(params, fused=None)
    if fused is None:
        try:
            return make(params, fused=True)
        except (RuntimeError, ValueError):
            return make(params, fused=None)
    return make(params, fused=fused)


def _sharded(params: list) -> bool:
    from torch.distributed.tensor import DTensor

    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return any(isinstance(p, DTensor) for p in tensors)


def adam(
    params: Iterable,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba, 2015); L2 penalty added to the gradient when weight_decay > 0; fused kernel by default."""
    return _fused(partial(torch.optim.Adam, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay), params, fused)


def adamw(
    params: Iterable,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019); fused kernel by default."""
    return _fused(partial(torch.optim.AdamW, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay), params, fused)


def sgd(
    params: Iterable,
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Stochastic gradient descent, optionally with (Nesterov) momentum; fused kernel by default."""
    return _fused(partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov),
                  params, fused)
