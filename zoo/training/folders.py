"""Run folders: the files ``zoo build`` writes (weights, checkpoint, per-epoch records, a sweep's
index of variants), claiming a free folder for a new run, and reading a finished one back."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import yaml

from zoo import plots
from zoo.errors import ZooError
from zoo.files import SUFFIX, atomic_write_bytes

METRICS = "metrics.jsonl"
SWEEP = "sweep.json"
WEIGHTS = f"weights{SUFFIX}"
CHECKPOINT = "checkpoint"  # the folder of a run's checkpoint (zoo.training.checkpoint), whatever its strategy
EARLIER_CHECKPOINT = f"checkpoint{SUFFIX}"  # an earlier zoo's, still a sign that the folder holds a run
MAX_ENTRIES = 10_000  # entries of a folder looked at for earlier runs

RUN_FILES = (WEIGHTS, CHECKPOINT, EARLIER_CHECKPOINT, METRICS, SWEEP)  # a folder with one of these holds a run


def holds_run(folder: Path, depth: int = 2) -> bool:
    """Whether ``folder`` (or a sweep variant inside it, ``depth`` levels down at most) holds a run's
    results or checkpoint. Symbolic links to folders are not followed."""
    folder = Path(folder)
    if any((folder / name).exists() for name in RUN_FILES):
        return True
    if depth == 0 or folder.is_symlink() or not folder.is_dir():
        return False
    try:
        subfolders = [sub for sub in itertools.islice(folder.iterdir(), MAX_ENTRIES)
                      if sub.name[0] != "." and not sub.is_symlink() and sub.is_dir()]
    except OSError:
        return False
    return any(holds_run(sub, depth - 1) for sub in subfolders)


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


# What an epoch's record says besides its metrics: its number, its seconds and the share of them the
# loop spent waiting for its data.
RECORD_FACTS = ("epoch", "seconds", "data_wait")


def final_metrics(history: list[dict]) -> dict[str, float]:
    """The last epoch's record without its epoch number and times."""
    return {k: v for k, v in history[-1].items() if k not in RECORD_FACTS}


def data_wait(history: list[dict]) -> float | None:
    """The share of the training time the loop waited for its data, over every epoch recorded."""
    timed = [r for r in history if "data_wait" in r and "seconds" in r]
    total = sum(r["seconds"] for r in timed)
    return sum(r["data_wait"] * r["seconds"] for r in timed) / total if total else None


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
