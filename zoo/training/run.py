"""The :class:`Run`: the one object the training loop receives and every lifecycle hook and callback
sees. It holds the recipe's settings and its built parts (no copies of either), where the run stands,
its folder and its events, and writes its weights file with the metadata built here, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from importlib.metadata import version
from pathlib import Path

import torch
from torch import Tensor

from zoo.assembly.distributed import Context
from zoo.assembly.parts import Parts
from zoo.assembly.precision import Precision
from zoo.assembly.strategy import Strategy
from zoo.names import DISTRIBUTION
from zoo.recipe.schema import VERSION, Settings
from zoo.registry import Registry
from zoo.registry.events import Callback, Events
from zoo.training.folders import CHECKPOINT, WEIGHTS, final_metrics
from zoo.weights.format import data_digest, save
from zoo.weights.machine import this_machine
from zoo.weights.metadata import Chosen, Evaluation, Init, PluginVersion, Stopped, Versions, WeightsMeta
from zoo.weights.spec import input_spec, input_stats


@dataclass
class Position:
    """Where a run stands: what a checkpoint saves and a resume restores."""

    epoch: int = 0  # epochs completed
    step: int = 0  # batches completed in the current epoch
    shuffle_state: Tensor | None = None  # shuffle generator state at the start of the current epoch
    loss_sum: float = 0.0  # over the current epoch's completed batches, weighted by batch size
    seen: int = 0
    history: list[dict] = field(default_factory=list)
    stop: str | None = None  # why training ended before its last epoch (early stopping), once decided


# Why a run trains: what becomes of its weights. Only a build is filed in the store as a version of
# its recipe's name; a search's best trial is filed by the search, once it is known.
Purpose = Literal["build", "sweep-variant", "search-trial", "reproduction"]
PURPOSES: tuple[str, ...] = Purpose.__args__


@dataclass(eq=False)
class Run:
    """One training run: its settings and parts, its folder, where it stands (what a checkpoint
    saves), this process's place in a torchrun job, the registry it was built from, its events and
    ``log`` (prints on rank 0, nothing elsewhere)."""

    settings: Settings
    parts: Parts
    folder: Path
    context: Context
    registry: Registry
    events: Events
    log: Callable[[str], None]
    generator: torch.Generator  # drives the per-epoch shuffles
    position: Position = field(default_factory=Position)
    sweep: str | None = None  # the variant's or trial's label, when the run is one of a sweep or a search
    purpose: Purpose = "build"
    label: str | None = None  # the store's NAME@N once it files the build (zoo_run_end, before callbacks hear it)
    resumed: bool = False
    chosen: Chosen | None = None  # the epoch whose weights the run keeps, when a callback chose one

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def model(self) -> torch.nn.Module:
        return self.parts.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.parts.optimizer

    @property
    def schedule(self) -> object | None:
        return self.parts.schedule

    @property
    def precision(self) -> Precision:
        return self.parts.precision

    @property
    def strategy(self) -> Strategy:
        return self.parts.strategy

    @property
    def callbacks(self) -> list[Callback]:
        return self.parts.callbacks

    @property
    def classes(self) -> list[str] | None:
        """The class names of the data, when it declares them."""
        return self.parts.classes

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes files and logs."""
        return self.context.is_main

    @property
    def history(self) -> list[dict]:
        """One record per finished epoch."""
        return self.position.history

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    @property
    def checkpoint(self) -> Path:
        """The folder of the run's checkpoint (``--resume`` reads it)."""
        return self.folder / CHECKPOINT

    @property
    def kept_epoch(self) -> int:
        """The epoch whose weights the run keeps: the one a callback chose, else the last."""
        return self.chosen.epoch if self.chosen else len(self.history)

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics of the weights the run keeps, as its weights file records them (``meta.metrics``:
        what the store, a sweep's table and a search read back)."""
        return self.metrics_after(self.kept_epoch)

    def metrics_after(self, epoch: int) -> dict[str, float]:
        """The metrics of the weights after ``epoch``: the one rule for what a weights file records."""
        return final_metrics(self.history[:epoch])

    def checkpoint_due(self, step: int, steps: int) -> bool:
        """Whether ``train.checkpoint_every`` asks for a checkpoint after batch ``step`` of the epoch's
        ``steps`` (the epoch's end has its own)."""
        train = self.settings.train
        every, accumulate = train.checkpoint_every, train.accumulate
        return bool(every) and step < steps and step % accumulate == 0 and (step // accumulate) % every == 0

    def stop(self, reason: str) -> None:
        """End training after this epoch (early stopping); ``reason`` is logged and kept in the weights."""
        if self.position.stop is None:
            self.position.stop = reason

    def choose(self, epoch: int, reason: str, **facts: object) -> None:
        """Say that ``run.model`` now holds the weights it had after ``epoch``, kept for ``reason``;
        ``facts`` (JSON values: the monitored number and its value) are recorded with it."""
        self.chosen = Chosen(epoch, reason, facts)

    def emit(self, event: str, **arguments: object) -> None:
        """Send a run event to the run's callbacks, then to the plugins (see zoo.registry.events)."""
        self.events.emit(event, run=self, **arguments)

    def implemented(self, event: str) -> bool:
        return self.events.implemented(event)

    def metadata(self, epoch: int) -> WeightsMeta:
        """What the weights file records when it holds the weights after ``epoch``."""
        settings, parts = self.settings, self.parts
        plugins = {p.name: PluginVersion(p.dist, p.version) for p in self.registry.plugins if p.status == "loaded"}
        init = parts.init
        spec = input_spec(parts.eval_data or parts.train_data)
        return WeightsMeta(
            name=settings.name,
            model=settings.model.raw,
            recipe=settings.recipe.data,
            recipe_version=VERSION,
            metrics=self.metrics_after(epoch),
            evaluation=Evaluation(settings.data.dataset.raw, settings.data.eval_split),
            seed=settings.train.seed,
            processes=self.context.world,
            data_sha256=data_digest(parts.train_data),
            versions=Versions(version(DISTRIBUTION), torch.__version__, plugins, torch.backends.cpu.get_cpu_capability(),
                              this_machine()),
            epoch=epoch,
            input=spec,
            input_stats=input_stats(parts.train_data, spec),
            transform=tuple(node.raw for node in settings.data.eval_transform),
            classes=tuple(parts.classes) if parts.classes else None,
            components=parts.components,
            init=init and Init(init.source, init.path, init.sha256, len(init.loaded), tuple(init.missing),
                               tuple(init.unexpected), tuple((k, tuple(a), tuple(b)) for k, a, b in init.mismatched),
                               tuple(init.new_head)),
            frozen=settings.train.freeze,
            stopped=Stopped(len(self.history), self.position.stop) if self.position.stop else None,
            chosen=self.chosen if self.chosen and self.chosen.epoch == epoch else None,
        )

    def save_weights(self, path: Path, epoch: int | None = None) -> str:
        """Write ``run.model`` as a weights file (on rank 0 only; every process calls this, as the
        strategy may gather the weights from all) recording the metrics after ``epoch`` (default: the
        chosen or the last epoch), why training stopped, and which epoch was chosen. Returns the
        strategy's line on how the weights were gathered."""
        tensors, how = self.strategy.weights(self.model, self.context)
        if self.is_main:
            epoch = epoch or self.kept_epoch
            save(tensors, path, self.metadata(epoch), dtype=self.settings.train.weights_dtype)
        return how
