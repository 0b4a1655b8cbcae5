"""The metric, the callback and the transform."""

import json
import os
import signal
from pathlib import Path

import torch
from torchmetrics import Metric


class ErrorRate(Metric):
    """Share of wrong top-1 predictions (1 - accuracy), from summed counts."""

    def __init__(self):
        super().__init__()
        self.add_state("wrong", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, output, target):
        self.wrong += (output.argmax(-1) != target).sum()
        self.total += target.numel()

    def compute(self):
        return self.wrong.float() / self.total


class EventLog:
    """Appends each event it hears to ``path`` (one JSON line) with the count of epochs it has seen,
    which it keeps in checkpoints; with $EVENT_LOG_FAIL=EVENT:EPOCH it raises there, and with
    $EVENT_LOG_INTERRUPT=EPOCH:STEP it presses Ctrl-C after that training step."""

    def __init__(self, path: str):
        self.path, self.epochs_seen = Path(path), 0

    def _log(self, event, **values):
        if os.environ.get("EVENT_LOG_FAIL") == f"{event}:{values.get('epoch')}":
            raise RuntimeError(f"event-log was told to fail in {event}")
        with open(self.path, "a") as f:
            f.write(json.dumps({"event": event, "epochs_seen": self.epochs_seen, **values}) + "\n")

    def zoo_run_start(self, run):
        self._log("zoo_run_start", resumed=run.resumed)

    def zoo_train_step(self, epoch, step):
        if os.environ.get("EVENT_LOG_INTERRUPT") == f"{epoch}:{step}":
            os.kill(os.getpid(), signal.SIGINT)

    def zoo_epoch_end(self, epoch, metrics):
        self.epochs_seen += 1
        self._log("zoo_epoch_end", epoch=epoch, error_rate=metrics.get("test_error_rate"))

    def zoo_run_end(self, metrics):
        self._log("zoo_run_end")

    def state_dict(self):
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        self.epochs_seen = state["epochs_seen"]


def shift_labels(by: int = 1, classes: int = 10, misbehave: str = "no"):
    """Relabel each training sample as class (label + by) mod classes, so a model trained with it
    predicts the next class; misbehave: "batch-size" drops a sample, "dtype" returns float targets."""

    def apply(x, y, generator):
        if misbehave == "batch-size":
            return x[1:], y[1:]
        if misbehave == "dtype":
            return x, y.float()
        return x, (y + by) % classes

    return apply
