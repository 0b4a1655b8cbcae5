"""Runs: the :class:`Run` that lifecycle hooks receive, and the run folders ``zoo build`` writes
(per-epoch records, a sweep's index of variants)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from zoo import plots
from zoo.errors import ZooError
from zoo.files import SUFFIX, atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from zoo.callbacks import Callback
    from zoo.distributed import Context
    from zoo.finetune import InitReport
    from zoo.precision import Precision
    from zoo.registry import Hooks
    from zoo.schema import Settings
    from zoo.training import Position

METRICS = "metrics.jsonl"
SWEEP = "sweep.json"
WEIGHTS = f"weights{SUFFIX}"
CHECKPOINT = f"checkpoint{SUFFIX}"


@dataclass(eq=False)
class Run:
    """One training run, as lifecycle hooks see it: its settings and folder, the model and the state
    of its training (what a checkpoint saves), this process's place in a torchrun job, and ``log``."""

    settings: Settings
    folder: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object | None
    generator: torch.Generator  # drives the per-epoch shuffles
    position: Position
    context: Context
    hooks: Hooks
    log: Callable[[str], None]  # prints on rank 0, nothing elsewhere
    sweep: str | None = None  # the variant's label, when the run is one variant of a sweep
    resumed: bool = False
    callbacks: list[Callback] = field(default_factory=list)  # the recipe's train.callbacks, in order
    classes: list[str] | None = None  # the class names of the data, when it declares them
    input: dict | None = None  # what one model input is (zoo.data.input_spec), recorded in the weights
    init: InitReport | None = None  # what train.init took from its weights file
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> plugin:name used
    data_sha256: str | None = None  # of the training data, recorded in the weights
    chosen: dict | None = None  # the epoch whose weights the run keeps, when a callback chose one (choose)
    precision: Precision | None = None  # train.precision on this device (its gradient scaler is checkpointed)

    @property
    def name(self) -> str:
        return self.settings.name

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
        """Where the run's checkpoint is kept (``--resume`` reads it)."""
        return self.folder / CHECKPOINT

    @property
    def fingerprint(self) -> str:
        """sha256 of the resolved recipe: a checkpoint resumes only the run that wrote it."""
        data = json.dumps(self.settings.recipe.data, sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics of the weights the run keeps: the chosen epoch's, else the last epoch's."""
        return final_metrics(self.history[: self.chosen["epoch"] if self.chosen else len(self.history)])

    def stop(self, reason: str) -> None:
        """End training after this epoch (early stopping); ``reason`` is logged and kept in the weights."""
        if self.position.stop is None:
            self.position.stop = reason

    def choose(self, epoch: int, reason: str, **facts: object) -> None:
        """Say that ``run.model`` now holds the weights it had after ``epoch``, kept for ``reason``;
        ``facts`` (JSON values: the monitored number and its value) are recorded with it."""
        self.chosen = {"epoch": epoch, "reason": reason, **facts}

    def save_weights(self, path: Path, epoch: int | None = None) -> None:
        """Write ``run.model`` as a weights file (on rank 0 only) recording the metrics after ``epoch``
        (default: the chosen or the last epoch), why training stopped, and which epoch was chosen."""
        from zoo import weights
        from zoo.registry import default_registry

        if not self.is_main:
            return
        epoch = epoch or (self.chosen["epoch"] if self.chosen else len(self.history))
        meta = weights.build_metadata(self.settings, self.data_sha256, final_metrics(self.history[:epoch]),
                                      default_registry().plugins, self.context.world)
        meta.update(epoch=epoch, input=self.input, classes=self.classes, components=self.components)
        if self.init:
            meta["init"] = self.init.meta()
        if self.settings.train.freeze:
            meta["frozen"] = list(self.settings.train.freeze)
        if self.position.stop:
            meta["stopped"] = {"after_epoch": len(self.history), "reason": self.position.stop}
        if self.chosen and self.chosen["epoch"] == epoch:
            meta["chosen"] = self.chosen
        weights.save(self.model, path, meta, dtype=self.settings.train.weights_dtype)

    def emit(self, event: str, **arguments: object) -> None:
        """Call each callback's method for ``event``, then the hook of every plugin enabled for this run
        (callbacks first, as Lightning calls its callbacks before checkpointing: a checkpoint written
        at an epoch's end holds the callbacks' state after that epoch)."""
        for callback in self.callbacks:
            callback.call(event, {"run": self, **arguments})
        getattr(self.hooks, event)(run=self, **arguments)

    def implemented(self, event: str) -> bool:
        return self.hooks.implemented(event) or any(event in c.methods for c in self.callbacks)


RUN_FILES = (WEIGHTS, CHECKPOINT, METRICS, SWEEP)  # a folder with one of these holds a run


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` (or a sweep variant inside it) holds a run's results or checkpoint."""
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_FILES) or (
        folder.is_dir() and any(holds_run(sub) for sub in folder.iterdir() if sub.is_dir() and sub.name[0] != "."))


def numbered(base: Path) -> Iterator[Path]:
    """``base``, then ``base-2``, ``base-3``, ...: the folders the runs of one recipe name take."""
    yield base
    for number in itertools.count(2):
        yield base.with_name(f"{base.name}-{number}")


def claim(base: Path) -> Path:
    """A new folder for a run: the first of :func:`numbered` that does not exist, created here (one
    mkdir), so two builds started together never share one."""
    return next(folder for folder in numbered(Path(base)) if _created(folder))


def _created(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True)
        return True
    except FileExistsError:
        return False


def newest(base: Path) -> Path:
    """The last of :func:`numbered` that exists (``base`` when none does): the run ``--resume`` continues."""
    existing = list(itertools.takewhile(Path.exists, numbered(Path(base))))
    return existing[-1] if existing else Path(base)


def final_metrics(history: list[dict]) -> dict[str, float]:
    """The last epoch's record without its epoch number and time."""
    return {k: v for k, v in history[-1].items() if k not in ("epoch", "seconds")}


def write_history(run: Path, history: list[dict]) -> None:
    """One JSON record per finished epoch."""
    atomic_write_bytes(run / METRICS, "".join(json.dumps(r) + "\n" for r in history).encode())


def read_history(run: Path) -> list[dict]:
    path = run / METRICS
    if not path.is_file():
        raise ZooError(f"{run} has no {METRICS}: not a zoo run folder, or no epoch has finished yet")
    history = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            history.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ZooError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
    if not history:
        raise ZooError(f"{path} is empty: no epoch has finished yet")
    return history


def write_sweep(folder: Path, name: str, variants: list[dict]) -> None:
    """The sweep's variants in order: each a ``label``, its run folder ``run`` and its ``values``."""
    atomic_write_bytes(folder / SWEEP, json.dumps({"name": name, "variants": variants}, indent=1).encode())


def read(folder: Path) -> tuple[str, dict[str, list[dict]]]:
    """A run or sweep folder's name and its histories: one for a run, one per variant for a sweep."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ZooError(f"no run folder {folder}; 'zoo build' writes them under runs/")
    if (folder / SWEEP).is_file():
        index = json.loads((folder / SWEEP).read_text())
        return index["name"], {v["label"]: read_history(folder / v["run"]) for v in index["variants"]}
    name = _recipe_name(folder)
    return name, {name: read_history(folder)}


def plot(folder: Path, out: Path | None = None) -> Path | None:
    """Draw a run's curves (``loss.png`` in it by default) or a sweep's, one curve per variant
    (``sweep.png``); None, drawing nothing, when matplotlib is missing."""
    folder = Path(folder)
    name, histories = read(folder)
    sweep = (folder / SWEEP).is_file()
    out = Path(out) if out else folder / ("sweep.png" if sweep else "loss.png")
    return out if plots.curves(out, histories, f"{name}: train loss against epoch" if sweep else name) else None


def _recipe_name(run: Path) -> str:
    try:
        return yaml.safe_load((run / "recipe.yaml").read_text())["name"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return run.name
