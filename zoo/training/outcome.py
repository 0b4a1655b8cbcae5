"""What ``zoo.build`` and ``zoo.search`` return: a finished run or search as typed values read back
from what it wrote -- the weights file's record (``meta.metrics``, the one source of a run's
figures), the store's build of it, the study's best trial."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from zoo.errors import ZooError
from zoo.registry import Registry
from zoo.training.folders import WEIGHTS, claim
from zoo.weights.format import read_meta
from zoo.weights.store import builds


@dataclass(frozen=True)
class Built:
    """A trained run: its folder, its weights file and the figures that file records, the store's
    label for it (None when the run was not filed: a sweep's variant, -p no:store), the epoch whose
    weights the file holds, and the epoch a callback chose, if one did."""

    name: str
    folder: Path
    weights: Path
    metrics: dict[str, float]
    label: str | None
    epoch: int | None
    chosen_epoch: int | None


def built(folder: Path) -> Built:
    """The run in ``folder``, as its files and the store record it."""
    weights = Path(folder) / WEIGHTS
    meta = read_meta(weights)
    run = str(Path(folder).resolve())
    filed = [b for b in builds(meta.name) if b.run == run] if meta.name else []
    return Built(meta.name, Path(folder), weights, dict(meta.metrics), filed[-1].label if filed else None, meta.epoch,
                 meta.chosen.epoch if meta.chosen else None)


@dataclass(frozen=True)
class Searched:
    """A finished search: its folder, its best trial (number, parameters, value of the metric), that
    trial's run, and the store's label for it."""

    folder: Path
    metric: str
    best_trial: int
    best_params: dict[str, object]
    best_value: float
    best: Built


@contextlib.contextmanager
def _recipe_file(recipe: str | Path | dict) -> Iterator[str]:
    """A recipe as the commands take it: a dict is written to a YAML file (its errors name its lines)."""
    if not isinstance(recipe, dict):
        yield str(recipe)
        return
    with tempfile.TemporaryDirectory(prefix="zoo-recipe-") as folder:
        path = Path(folder) / f"{recipe.get('name', 'recipe')}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        yield str(path)


def train(recipe: str | Path | dict, registry: Registry, *, overrides: Sequence[str] = (), out: Path | None = None,
          resume: bool = False, nproc: int = 1, log=print) -> Built | list[Built]:
    """``zoo build`` from Python: a Built (a list of them for a sweep, one per variant); errors are
    ZooErrors (a RecipeError names the recipe's line)."""
    from zoo.training.build import build, read_recipe

    with _recipe_file(recipe) as path:
        if nproc == 1:
            return _one_or_all([built(f) for f in build(path, overrides, registry=registry, out=out, resume=resume,
                                                        log=log)])
        settings = read_recipe(path, registry, overrides)  # refused here, in one line, before any process starts
        folder = Path(out) if out else claim(Path("runs") / settings.name)
        command = [sys.executable, "-m", "zoo", "build", path, *(f"--set={s}" for s in overrides), "--nproc",
                   str(nproc), "--out", str(folder), "--no-progress", *(["--resume"] if resume else [])]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("zoo")] or done.stderr.splitlines()[-1:]
        raise ZooError(said[-1].removeprefix("zoo: error: ") if said else
                       f"the torchrun job failed (exit status {done.returncode})")
    log(done.stdout.rstrip())
    return built(folder)


def search(recipe: str | Path | dict, registry: Registry, *, overrides: Sequence[str] = (), out: Path | None = None,
           trials: int | None = None, workers: int = 1, storage: str | None = None, log=print) -> Searched:
    """``zoo search`` from Python: the search's folder and its best trial, as a Searched."""
    from zoo.training.build import read_recipe
    from zoo.training.build import search as run
    from zoo.training.search import as_search, open_study, storage_url

    with _recipe_file(recipe) as path:
        folder = run(path, overrides, registry=registry, out=out, storage=storage, workers=workers, trials=trials,
                     log=log)
        settings = read_recipe(path, registry, [*overrides, *([f"search.trials={trials}"] if trials else [])])
    plan = as_search(settings)
    best = open_study(settings, plan, storage_url(folder, storage)).best_trial
    return Searched(folder, plan.metric, best.number, dict(best.params), best.value,
                    built(folder / best.user_attrs["run"]))


def _one_or_all(runs: list[Built]) -> Built | list[Built]:
    return runs[0] if len(runs) == 1 else runs
