"""A transform, a metric and a callback of the example plugin, and its command's drawing."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.api import ZooError


def jitter(std: float = 0.02):
    """Add Gaussian noise of standard deviation ``std`` to each training input (off at evaluation)."""
    if std < 0:
        raise ZooError(f"std must be >= 0, got {std}")

    def apply(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        if generator is None:
            return x, y
        return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype), y

    return apply


def balanced_accuracy(num_classes: int):
    """Mean of the per-class recalls: accuracy that every class weighs in equally."""
    from torchmetrics.classification import MulticlassAccuracy

    return MulticlassAccuracy(num_classes, average="macro")


class StopAt:
    """End training once a recorded number reaches ``target`` (say test_accuracy 0.95)."""

    def __init__(self, monitor: str, target: float, recorded: tuple[str, ...]):
        if monitor not in recorded:
            raise ZooError(f"monitor '{monitor}' is not recorded; each epoch records: {', '.join(recorded)}")
        self.monitor, self.target = monitor, target

    def zoo_epoch_end(self, run, metrics):
        if metrics[self.monitor] >= self.target:
            run.stop(f"{self.monitor} reached {self.target}")


def draw(n: int, width: int = 48, height: int = 20) -> str:
    """The two-spirals points as text: 'o' for class 0, 'x' for class 1."""
    from zoo_example.datasets import two_spirals

    points, labels = two_spirals(n).tensors()
    grid = [[" "] * width for _ in range(height)]
    for (px, py), label in zip(points.tolist(), labels.tolist()):
        column = min(width - 1, max(0, int((px + 1.1) / 2.2 * width)))
        row = min(height - 1, max(0, int((1.1 - py) / 2.2 * height)))
        grid[row][column] = "ox"[label]
    return "\n".join("".join(row).rstrip() for row in grid)


class FocalLoss(torch.nn.Module):
    """Cross-entropy that down-weights easy examples by (1 - p)^gamma (Lin et al., 2017)."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        log_p = torch.log_softmax(prediction, dim=-1).gather(-1, target[..., None]).squeeze(-1)
        return (-(1 - log_p.exp()) ** self.gamma * log_p).mean()


def sgd_momentum(params, lr: float = 0.1, momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum, defaults that suit small problems."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


def step_decay(optimizer, total_steps: int, drops: int = 3, gamma: float = 0.5):
    """Multiply the learning rate by ``gamma`` ``drops`` times, evenly over the run."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, total_steps // (drops + 1)), gamma=gamma)
