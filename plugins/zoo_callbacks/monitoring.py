"""Callbacks that watch one number of each epoch's record: early stopping and the best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from zoo.api import ZooError, did_you_mean

Mode = Literal["auto", "min", "max"]


@dataclass
class Monitor:
    """A number of the epoch records (``test_accuracy``, ``train_loss`` ...) and which way is better."""

    name: str
    mode: str
    min_delta: float = 0.0

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``."""
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


def watched(name: str, recorded: tuple[str, ...], mode: Mode, min_delta: float = 0.0) -> Monitor:
    """The monitor of ``name``, which must be one of the numbers the recipe records; ``auto`` mode
    minimises a loss and maximises anything else."""
    if name not in recorded:
        raise ZooError(f"monitor '{name}' is not recorded by this recipe.{did_you_mean(name, recorded)} "
                       f"Each epoch records: {', '.join(recorded)}")
    if min_delta < 0:
        raise ZooError(f"min_delta must be >= 0, got {min_delta}")
    return Monitor(name, ("min" if name.endswith("loss") else "max") if mode == "auto" else mode, min_delta)


class EarlyStopping:
    """Stop training when a recorded number has not improved for ``patience`` epochs.

    ``monitor`` is a key of the epoch records (``test_loss``, ``test_accuracy``); ``mode`` auto
    minimises losses and maximises the rest; an improvement must exceed ``min_delta``. The weights
    file records when and why the run stopped; ``--resume`` continues the count.
    """

    def __init__(self, monitor: str, recorded: tuple[str, ...], mode: Mode = "auto", patience: int = 3,
                 min_delta: float = 0.0):
        if patience < 1:
            raise ZooError(f"patience must be >= 1, got {patience}")
        self.watch = watched(monitor, recorded, mode, min_delta)
        self.patience = patience
        self.best: float | None = None
        self.best_epoch = 0
        self.waited = 0

    def zoo_epoch_end(self, run, epoch, metrics):
        value = metrics[self.watch.name]
        if self.watch.better(value, self.best):
            self.best, self.best_epoch, self.waited = value, epoch, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            by = f" by more than {self.watch.min_delta:g}" if self.watch.min_delta else ""
            run.stop(f"{self.watch.name} did not improve{by} for {self.patience} epochs "
                     f"(best {self.best:.4f} at epoch {self.best_epoch})")

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.waited = state["best"], state["best_epoch"], state["waited"]


class BestCheckpoint:
    """Keep the weights of the epoch with the best value of a recorded number, as well as the last.

    ``keep`` says which the run's weights file holds (and the store records): ``best`` (the other
    is written as ``last.safetensors``) or ``last`` (the other as ``best.safetensors``). The best
    weights are held in memory (one copy of the model's state, on the CPU) and in checkpoints.
    """

    def __init__(self, monitor: str, recorded: tuple[str, ...], mode: Mode = "auto",
                 keep: Literal["best", "last"] = "best"):
        self.watch = watched(monitor, recorded, mode)
        self.keep = keep
        self.best: float | None = None
        self.best_epoch = 0
        self.weights: dict[str, torch.Tensor] | None = None

    def zoo_epoch_end(self, run, epoch, metrics):
        value = metrics[self.watch.name]
        if self.watch.better(value, self.best):
            self.best, self.best_epoch = value, epoch
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}

    def zoo_train_end(self, run):
        if self.weights is None:
            return
        last = len(run.history)
        facts = {"monitor": self.watch.name, "value": self.best}
        reason = f"best {self.watch.name} ({self.best:.4f}) of {last} epochs"
        if self.keep == "best":
            run.save_weights(run.folder / "last.safetensors", epoch=last)
            run.model.load_state_dict(self.weights)
            run.choose(self.best_epoch, reason, **facts)
            return
        kept = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        run.model.load_state_dict(self.weights)
        run.save_weights(run.folder / "best.safetensors", epoch=self.best_epoch)  # records that epoch's metrics
        run.model.load_state_dict(kept)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.weights = state["best"], state["best_epoch"], state["weights"]
