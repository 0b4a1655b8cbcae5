"""Searches on Optuna: a recipe's ``search`` (TPE, random, grid or CMA-ES over a space, trials pruned
through the epoch-end event) and its ``sweep`` (a grid over the listed values) are trials of one
Optuna study, kept in the run folder (SQLite; any storage URL lets workers on other machines join).

Every trial is a run of its own folder; the study only holds what Optuna needs. A worker takes
trials until the study has ``trials`` of them complete or pruned: rerunning the command after a
crash continues the study, and a trial a dead worker left running is failed when its heartbeat goes
stale and retried (Optuna's heartbeat and retry callback)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import random
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from zoo.errors import ZooError
from zoo.names import install
from zoo.files import atomic_write_bytes
from zoo.recipe.parse import RecipeError, raise_all
from zoo.recipe.schema import Settings, validate
from zoo.recipe.space import Param, Search, direction_of
from zoo.registry.events import Callback
from zoo.training.folders import WEIGHTS, claim, read_history

STUDY = "study.db"
HEARTBEAT = 1  # seconds between a running trial's heartbeats
GRACE = 5  # seconds without one before the trial counts as dead
RETRIES = 2  # times a dead worker's trial is retried


@dataclass(frozen=True)
class Variant:
    """One point of a search space or sweep: its label, its folder's name, its values by key path and
    its validated settings."""

    label: str
    slug: str
    values: dict
    settings: Settings


def variant(settings: Settings, values: dict) -> Variant:
    """``settings`` with ``values`` (key path -> value) set, its search and sweep sections removed."""
    label = ", ".join(f"{k.rsplit('.', 1)[-1]}={_text(v)}" for k, v in values.items())
    slug = _slug("-".join(f"{k.rsplit('.', 1)[-1]}-{_text(v)}" for k, v in values.items())) or "variant"
    try:
        source = ("search", "space") if settings.search is not None else ("sweep",)
        recipe = settings.recipe.with_overrides(values.items(), source)
        for section in ("sweep", "search"):
            recipe.data.pop(section, None)
        return Variant(label, slug, dict(values), validate(recipe))
    except RecipeError as exc:  # located where the sweep or the space sets the key
        what = "search variant" if settings.search is not None else "sweep variant"
        raise_all([RecipeError(f"{what} {label}: {e.reason}", e.mark, e.path) for e in getattr(exc, "errors", [exc])])
        raise


def variants(settings: Settings) -> list[Variant]:
    """Each combination of a sweep's values, in order."""
    keys = list(settings.sweep)
    return [variant(settings, dict(zip(keys, combo))) for combo in itertools.product(*settings.sweep.values())]


def extremes(settings: Settings) -> list[Variant]:
    """A search's smallest and largest variants (every low bound or first choice, then every high
    bound or last choice): ``zoo check`` builds both, so a search never fails on trial 17."""
    space = settings.search.space
    return [variant(settings, {p.path: p.extremes()[end] for p in space}) for end in (0, 1)]


def search_plan(settings: Settings) -> str:
    """What a search will do, in words: its trials, its space, and the two variants ``zoo check`` built."""
    search = settings.search
    space = "\n".join(f"  {p.path}: " + (f"one of {', '.join(map(_text, p.choices))}" if p.kind == "choice" else
                                          f"{p.kind} from {p.low} to {p.high}" + (f", step {p.step}" if p.step else ""))
                      for p in search.space)
    small, large = extremes(settings)
    return (f"search: {search.trials} trials, {search.sampler} sampler, {search.pruner} pruner, "
            f"{search.direction} {search.metric}; space:\n{space}\n"
            f"checked its smallest variant ({small.label}) and its largest ({large.label})")


def as_search(settings: Settings) -> Search:
    """The search a recipe asks for: its ``search``, or its ``sweep`` as a grid search scored by the
    first evaluation metric (else the evaluation loss, else the training loss)."""
    if settings.search is not None:
        return settings.search
    split = settings.data.eval_split
    metric = (f"{split}_{settings.metrics[0].name.replace('-', '_')}" if split and settings.metrics
              else f"{split}_loss" if split else "train_loss")
    space = tuple(Param(path, "choice", choices=tuple(values)) for path, values in settings.sweep.items())
    return Search(trials=math.prod(len(p.choices) for p in space), metric=metric,
                  direction=direction_of(metric) or "minimize", sampler="grid", pruner="none", space=space)


def _text(value: object) -> str:
    """A value as YAML writes it: null, true, 0.001, [1, 2], or the string itself."""
    return value if isinstance(value, str) else json.dumps(value)


def _slug(text: str) -> str:
    """A folder name from a label: letters, digits, single dots and single hyphens, never a path."""
    return re.sub(r"(?:[^A-Za-z0-9.]|\.{2,})+", "-", text.replace("_", "-")).strip("-.")[:100]


def optuna():
    """The optuna module, or a ZooError saying which extra installs it."""
    try:
        import optuna
    except ImportError:
        raise ZooError(f"searches and sweeps run on Optuna: {install('search')}") from None
    # zoo says what happens to trials in its own lines (a repeat redrawn, a search interrupted); Optuna's
    # warning for each failed trial carries the traceback of what zoo raised on purpose
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # zoo uses Optuna's heartbeat failing and matplotlib plots on purpose; their "experimental" notes are noise
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_url(folder: Path, storage: str | None) -> str:
    """The study's storage: ``storage`` as given, else the SQLite file in ``folder``."""
    return storage or f"sqlite:///{(Path(folder) / STUDY).resolve()}"


def open_study(settings: Settings, search: Search, storage: str, worker: int = 0):
    """The recipe's study in ``storage`` (an RDB URL, or a journal file ``journal:PATH`` where SQLite
    locking is unsafe, as on NFS), created on first use and continued after. Worker ``worker`` of the
    command's processes samples from its own seed (``train.seed`` + its number), and TPE assumes the
    worst for the trials other workers are running (constant liar), so parallel workers draw apart."""
    op = optuna()
    import sqlalchemy.exc

    retry = op.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)
    seed = settings.train.seed + worker
    # Optuna's TPE starts with 10 random trials; a search of a few dozen trials is better served by fewer
    startup = max(2, min(10, search.trials // 4))
    samplers = {"tpe": lambda: op.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                                      constant_liar=True),
                "random": lambda: op.samplers.RandomSampler(seed=seed),
                "cmaes": lambda: op.samplers.CmaEsSampler(seed=seed),
                "grid": lambda: op.samplers.GridSampler({p.path: [_choice(c) for c in p.choices] for p in search.space},
                                                       seed=seed)}
    failures = (ValueError, OSError, op.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)
    if search.sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:  # Optuna imports it at a trial
        raise ZooError("search.sampler cmaes needs the cmaes package: pip install cmaes, or choose tpe")
    for attempt in range(CREATE_TRIES):
        try:
            if storage.startswith("journal:"):
                backend = op.storages.journal.JournalFileBackend(storage.removeprefix("journal:"))
                store = op.storages.JournalStorage(backend)
            else:
                store = op.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                                               heartbeat_stale_trial_callback=retry)
            return op.create_study(study_name=settings.name, storage=store, sampler=samplers[search.sampler](),
                                   pruner=pruner(search.pruner, settings.train.epochs, search.trials),
                                   direction=search.direction, load_if_exists=True)
        except ImportError as exc:  # cmaes is its own package; a storage URL's driver too
            raise ZooError(f"the {search.sampler} sampler or the storage {storage} needs {exc.name}: "
                           f"pip install {exc.name}") from None
        except failures as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            if attempt + 1 < CREATE_TRIES and RACING.search(first):  # workers creating one study at once
                time.sleep(0.1 * (attempt + 1) + random.random() * 0.2)
                continue
            raise ZooError(f"the study's storage {storage}: {first[:300]} (an RDB URL such as sqlite:///PATH/x.db in "
                           "an existing folder, or journal:PATH; a damaged study file: delete it to start again)") from None


CREATE_TRIES = 8  # a study several workers create at the same moment: the losers of the race try again
RACING = re.compile(r"already exists|UNIQUE constraint|database is locked|duplicate key", re.IGNORECASE)


def pruner(kind: str, epochs: int, trials: int):
    """Optuna's pruner for a search's ``pruner`` (the study's and, under torchrun, rank 0's copy); the
    median pruner judges a trial once a quarter of the trials (1 to 5) have finished."""
    op = optuna()
    if kind == "median":
        return op.pruners.MedianPruner(n_startup_trials=max(1, min(5, trials // 4)), n_warmup_steps=1)
    if kind == "hyperband":
        return op.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return op.pruners.NopPruner()


def _choice(value: object) -> object:
    """A choice as Optuna stores it: None, bool, int, float and str as they are, anything else as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def suggest(trial, param: Param) -> object:
    """The value ``trial`` takes for ``param``; ZooError when the study's earlier trials drew it from
    another kind of range (the recipe's space changed since)."""
    try:
        if param.kind == "choice":
            encoded = {_choice(c): c for c in param.choices}
            return encoded[trial.suggest_categorical(param.path, list(encoded))]
        if param.kind == "int":
            return trial.suggest_int(param.path, param.low, param.high, step=param.step or 1)
        return trial.suggest_float(param.path, param.low, param.high, step=param.step, log=param.kind == "log")
    except ValueError as exc:  # Optuna: "Cannot set different distribution kind to the same parameter name."
        raise ZooError(f"search.space.{param.path}: the study's earlier trials drew it from another kind of range "
                       f"({str(exc).rstrip('.')}): the space changed since they ran. Search into another folder "
                       "(--out) or storage, or delete the study to start again") from None


class _Surplus(Exception):
    """The study had its trials before this one started (two workers asked at once)."""


class _Repeat(Exception):
    """The trial drew the parameters of a finished one: it is failed, and another drawn instead."""


PRUNED = "pruned by the search"
TRIAL_ENV = "ZOO_SEARCH_TRIAL"  # how a trial trained under torchrun learns which trial it is


@dataclass
class Pruning:
    """Reports each epoch's value of the searched metric to the trial and stops a trial the pruner
    gives up on, through the stop path early stopping uses. Under torchrun only rank 0 holds the
    trial and talks to the study; every rank hears its decision."""

    trial: object | None  # None on ranks other than 0
    metric: str

    def zoo_epoch_end(self, run, epoch, metrics):
        if self.metric not in metrics or run.position.stop is not None:
            return
        prune = False
        if self.trial is not None:
            self.trial.report(metrics[self.metric], epoch)
            prune = self.trial.should_prune()
        if run.context.active:
            import torch

            prune = run.context.sum(torch.tensor([float(prune)], device=run.parts.device)).item() > 0
        if prune:
            run.stop(f"{PRUNED} after epoch {epoch} ({self.metric} {metrics[self.metric]:.4f})")


def trial_listeners(context) -> list[Callback]:
    """The pruning listener of a trial ``zoo search --nproc`` started under torchrun ($ZOO_SEARCH_TRIAL),
    or none."""
    spec = os.environ.get(TRIAL_ENV)
    if not spec:
        return []
    trial = json.loads(spec)
    held = None
    if context.is_main:
        op = optuna()
        study = op.load_study(study_name=trial["study"], storage=trial["storage"],
                              pruner=pruner(trial["pruner"], trial["epochs"], trial["trials"]))
        held = op.trial.Trial(study, trial["trial_id"])
    return [Callback("search-pruning", "zoo search", Pruning(held, trial["metric"]))]


@dataclass(frozen=True)
class Trained:
    """What a worker needs of a trained trial."""

    folder: Path
    history: list[dict]
    metrics: dict  # of the chosen epoch
    stop: str | None  # why it ended early


@dataclass
class Worker:
    """Takes trials of one study until it has ``search.trials`` complete or pruned ones."""

    settings: Settings
    search: Search
    folder: Path
    train: Callable  # train(settings, folder, label, trial) -> Trained, claiming a folder of that name
    log: Callable[[str], None]
    grid: bool = False

    def run(self, study) -> None:
        op = optuna()
        states = op.trial.TrialState
        while True:
            op.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in (states.COMPLETE, states.PRUNED) for t in trials)
            running = sum(t.state == states.RUNNING for t in trials)
            waiting = any(t.state == states.WAITING for t in trials)  # a dead worker's trial, to retry
            if finished >= self.search.trials:
                return
            if finished + running >= self.search.trials and not waiting:  # the rest runs elsewhere, or is dead
                time.sleep(HEARTBEAT / 2)  # and will be failed and retried when its heartbeat is stale
                continue
            study.optimize(self.objective, n_trials=1, catch=(_Surplus, _Repeat))

    def objective(self, trial) -> float:
        op = optuna()
        states = op.trial.TrialState
        if isinstance(trial.storage, op.storages.RDBStorage):
            # Optuna's heartbeat thread may not have written yet; a trial killed before its first heartbeat
            # would never count as dead, and a resumed search would wait for it forever
            trial.storage.record_heartbeat(trial._trial_id)
        earlier = [t for t in trial.study.get_trials(deepcopy=False)
                   if t.number < trial.number and t.state in (states.COMPLETE, states.PRUNED, states.RUNNING)]
        if len(earlier) >= self.search.trials:
            raise _Surplus(f"the study had its {self.search.trials} trials")
        values = {p.path: suggest(trial, p) for p in self.search.space}
        result = self._repeated(trial)
        if result is not None:
            return result
        chosen = variant(self.settings, values)
        label = chosen.label if self.grid else f"trial {trial.number}: {chosen.label}"
        base = self.folder / (chosen.slug if self.grid else f"trial-{trial.number:03d}")
        self.log(f"--- {self.settings.name}: {label}")
        run = self.train(chosen.settings, base, label, trial if self.search.pruner != "none" else None)
        trial.set_user_attr("run", run.folder.name)
        trial.set_user_attr("epochs", len(run.history))
        trial.set_user_attr("label", chosen.label)
        if run.stop and run.stop.startswith(PRUNED):
            raise op.TrialPruned(run.stop)
        if self.search.metric not in run.metrics:
            raise ZooError(f"the search's metric {self.search.metric} is not recorded; the runs record "
                           f"{', '.join(run.metrics)} (search.metric)")
        return run.metrics[self.search.metric]


    def _repeated(self, trial) -> float | None:
        """None when ``trial``'s parameters are new. A trial that repeats a finished one is failed
        (_Repeat) and drawn again; once as many were redrawn as the search has trials (a small space
        the sampler keeps returning to), it takes the earlier trial's result instead of training."""
        op = optuna()
        states = op.trial.TrialState
        trials = trial.study.get_trials(deepcopy=False)
        same = next((t for t in trials if t.number != trial.number and t.params == trial.params
                     and t.state in (states.COMPLETE, states.PRUNED)), None)
        if same is None:
            return None
        trial.set_user_attr("repeats", same.number)
        redrawn = sum(t.state == states.FAIL and "repeats" in t.user_attrs for t in trials)
        if redrawn < self.search.trials:
            self.log(f"--- trial {trial.number} repeats trial {same.number}'s parameters: drawing again")
            raise _Repeat(f"trial {trial.number} repeats trial {same.number}")
        self.log(f"--- trial {trial.number} repeats trial {same.number}'s parameters: its result, not trained again")
        for key in ("run", "epochs", "label"):
            trial.set_user_attr(key, same.user_attrs.get(key))
        if same.state == states.PRUNED:
            raise op.TrialPruned(f"as trial {same.number}")
        return same.value


def in_process(train_run: Callable, metric: str) -> Callable:
    """A worker's ``train``: each trial a run in this process (``train_run`` of zoo.training.build)."""

    def train(settings: Settings, base: Path, label: str, trial) -> Trained:
        listeners = [Callback("search-pruning", "zoo search", Pruning(trial, metric))] if trial else []
        run = train_run(settings, base, sweep=label, listeners=listeners)
        return trained(run.folder)

    return train


def under_torchrun(nproc: int, storage: str, search: Search, relaunch: list[str]) -> Callable:
    """A worker's ``train``: each trial ``zoo build`` under torchrun, ``nproc`` processes on this machine;
    rank 0 reports to the trial through $ZOO_SEARCH_TRIAL."""
    import subprocess
    import sys

    def train(settings: Settings, base: Path, label: str, trial) -> Trained:
        folder = claim(base)
        recipe = folder.with_name(f".{folder.name}.yaml")
        atomic_write_bytes(recipe, yaml.safe_dump(settings.recipe.data, sort_keys=False).encode())
        env = dict(os.environ)
        if trial is not None:
            env[TRIAL_ENV] = json.dumps({"storage": storage, "study": trial.study.study_name,
                                         "trial_id": trial._trial_id, "metric": search.metric,
                                         "pruner": search.pruner, "epochs": settings.train.epochs,
                                         "trials": search.trials})
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "zoo", *relaunch, "build", str(recipe), f"--out={folder}", "--overwrite"]
        try:
            if subprocess.call(command, env=env) != 0:
                raise ZooError(f"{folder}: the trial's torchrun job failed (its output is above)")
        finally:
            recipe.unlink(missing_ok=True)
        return trained(folder)

    return train


def trained(folder: Path) -> Trained:
    """A trained trial as its folder records it: the metrics its weights file records (the chosen
    epoch's, when a callback chose one), never the last line of its history."""
    from zoo.weights.format import read_meta

    meta, history = read_meta(folder / WEIGHTS), read_history(folder)
    order = list(history[-1])  # the records' order: train_loss, the evaluation loss, the metrics
    metrics = dict(sorted(meta.metrics.items(), key=lambda item: order.index(item[0]) if item[0] in order else 0))
    return Trained(folder, history, metrics, meta.stopped.reason if meta.stopped else None)
