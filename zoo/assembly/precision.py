"""Numeric precision of training (``train.precision``): how the forward pass is autocast, and how the
loss is scaled into gradients and the optimizer stepped. The parameters stay float32 in every mode.

- ``32``: float32 throughout.
- ``bf16``: forward passes under ``torch.autocast`` with bfloat16 (CPU and CUDA); bfloat16 has
  float32's range, so the gradients need no scaling.
- ``16-mixed``: autocast with float16 and a ``torch.amp.GradScaler`` (CUDA only): the loss is scaled
  before backward, the gradients unscaled before clipping, and a step with inf/NaN gradients skipped
  (the PyTorch AMP recipe; not exercised here, for want of a GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.recipe.schema import PRECISIONS


@dataclass
class Precision:
    """One training precision on one device."""

    name: str
    device: torch.device
    scaler: torch.amp.GradScaler | None = None
    autocasts: bool = True  # False when the training strategy casts the parameters itself (FSDP's policy)

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype forward passes compute in, when not float32."""
        name = PRECISIONS[self.name]
        return None if name is None else getattr(torch, name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context forward passes (and the loss) run in."""
        dtype = self.dtype
        return contextlib.nullcontext() if dtype is None or not self.autocasts else torch.autocast(self.device.type,
                                                                                                   dtype=dtype)

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer, parameters: Iterable[Tensor], grad_clip: float | None,
             before: Callable[[], None] = lambda: None) -> None:
        """Unscale the gradients, call ``before`` (they are true gradients now), clip them, then step,
        skipping a step whose gradients overflowed."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        before()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def precision(name: str, device: torch.device) -> Precision:
    """The :class:`Precision` ``name`` on ``device``; ZooError when the device cannot run it."""
    if name == "16-mixed" and device.type != "cuda":
        raise ZooError(f"precision 16-mixed (float16 with a gradient scaler) needs a CUDA device, and this run "
                       f"is on {device.type}; use bf16 on a CPU")
    return Precision(name, device, torch.amp.GradScaler(device.type) if name == "16-mixed" else None)


def channels_last(model: torch.nn.Module, forward: Callable) -> Callable:
    """``forward`` with ``model``'s weights and every 4-d input in the channels-last memory format
    (``train.channels_last``); the saved weights are contiguous as ever."""
    model.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        return forward(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)

    return run
