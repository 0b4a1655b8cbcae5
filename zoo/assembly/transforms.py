"""Transforms: components a recipe lists in ``data.transform`` / ``data.eval_transform`` that change
each batch on the device, in order, as whole tensors.

A transform is called as ``transform(x, y, generator)`` and returns the new ``(x, y)``: ``x`` the
batch's model inputs, ``y`` its targets. It draws its random choices from ``generator``, a
``torch.Generator`` on the batch's device seeded from the run's seed, the epoch, the step and the
process, so a run is bit-identical and resumes mid-epoch. At evaluation ``generator`` is None: a
random augmentation returns the batch unchanged (as Keras' random layers do at inference), so one
list can serve both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.errors import ZooError

Transform = Callable[[Tensor, Tensor, torch.Generator | None], tuple[Tensor, Tensor]]


class TransformError(ZooError):
    """A transform raised or changed what it must keep; the message names it and where the recipe lists it."""

    def __init__(self, step: Step, reason: str):
        super().__init__(f"{step.where}: {reason}")
        self.step, self.reason = step, reason


@dataclass(frozen=True)
class Step:
    """A built transform, its component name and where the recipe lists it (``file:line: key path``)."""

    name: str
    where: str
    target: Transform


@dataclass(frozen=True)
class Pipeline:
    """Transforms applied in order. Each keeps the batch size and the dtypes of inputs and targets
    (a loss and a model are built for those); shapes may change."""

    steps: tuple[Step, ...]

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        for step in self.steps:
            try:
                result = step.target(x, y, generator)
            except ZooError as exc:
                raise TransformError(step, f"transform '{step.name}': {exc}") from exc
            except Exception as exc:
                first = next((line for line in str(exc).splitlines() if line.strip()), "")
                raise TransformError(step, f"transform '{step.name}' fails on a batch of {_describe(x)}: "
                                           f"{type(exc).__name__}: {first}") from exc
            x, y = _kept(step, x, y, result)
        return x, y


def _kept(step: Step, x: Tensor, y: Tensor, result: object) -> tuple[Tensor, Tensor]:
    if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, Tensor) for t in result)):
        raise TransformError(step, f"transform '{step.name}' returned {type(result).__name__}; "
                                   "a transform returns the pair (inputs, targets)")
    new_x, new_y = result
    for what, before, after in (("inputs", x, new_x), ("targets", y, new_y)):
        if after.shape[0] != before.shape[0] or after.dtype != before.dtype:  # shape[0]: symbolic under torch.export
            raise TransformError(step, f"transform '{step.name}' changed the {what} from {_describe(before)} "
                                       f"to {_describe(after)}; a transform keeps the batch size and the dtype")
    return new_x, new_y


def _describe(t: Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def batch_generator(device: torch.device, seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator a training batch's transforms draw from: a function of where the batch is in the
    run (CPython hashes a tuple of ints the same way in every process)."""
    return torch.Generator(device=device).manual_seed(hash((seed, epoch, step, rank)) % 2**63)
