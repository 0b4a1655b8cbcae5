"""Run folders: the per-epoch records ``zoo build`` writes, and the index of a sweep's variants."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from zoo import plots
from zoo.errors import ZooError
from zoo.files import atomic_write_bytes

METRICS = "metrics.jsonl"
SWEEP = "sweep.json"


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
    return out if plots.curves(out, histories, f"{name}: loss against epoch" if sweep else name) else None


def _recipe_name(run: Path) -> str:
    try:
        return yaml.safe_load((run / "recipe.yaml").read_text())["name"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return run.name
