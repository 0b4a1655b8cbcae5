"""Loggers: each epoch's record as CSV or TensorBoard scalars (rank 0 only), and the learning rate
added to the records. List ``lr-monitor`` before the loggers: callbacks hear each event in order."""

from __future__ import annotations

import csv
import io

from zoo.api import RunPath, ZooError, atomic_write_bytes, install_hint

INSTALL = install_hint("tensorboard")


class CsvLogger:
    """Write every epoch's record to ``path`` in the run folder, one CSV row per epoch.

    The file is rewritten whole (atomically) after each epoch, so a resumed run's file is complete."""

    def __init__(self, path: RunPath = RunPath("metrics.csv")):
        self.path = path

    def zoo_epoch_end(self, run):
        if not run.is_main:
            return
        columns = list(dict.fromkeys(key for record in run.history for key in record))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(run.history)
        atomic_write_bytes(run.folder / self.path, text.getvalue().encode())


class TensorBoard:
    """Write every epoch's numbers as TensorBoard scalars under ``folder`` in the run folder.

    Scalars are logged against the epoch; a resumed run drops what the interrupted one logged after
    its checkpoint. Needs tensorboard: the ``tensorboard`` extra."""

    def __init__(self, folder: RunPath = RunPath("tensorboard")):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ZooError(f"the tensorboard callback needs the tensorboard package: {INSTALL}") from None
        self.folder, self.open = folder, SummaryWriter
        self.writer = None

    def zoo_run_start(self, run):
        if run.is_main:
            self.writer = self.open(str(run.folder / self.folder), purge_step=len(run.history) + 1)

    def zoo_epoch_end(self, run, epoch, metrics):
        if self.writer is None:
            return
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def zoo_interrupted(self):
        self._close()

    def zoo_run_end(self):
        self._close()

    def _close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class LearningRateMonitor:
    """Add the learning rate at each epoch's end to its record: ``lr``, or ``lr_0``, ``lr_1`` ... for
    several parameter groups. It then appears in metrics.jsonl, the console and the loggers after it."""

    def zoo_epoch_end(self, run, metrics):
        groups = run.optimizer.param_groups
        for index, group in enumerate(groups):
            metrics["lr" if len(groups) == 1 else f"lr_{index}"] = float(group["lr"])
