"""A study's results: the trials table (``zoo search --status``), a sweep's files and table after its
grid (sweep.json, sweep.csv, then ``zoo_sweep_end``), and a search's Optuna plots."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.names import install
from zoo.files import atomic_write_bytes
from zoo.recipe.schema import Settings
from zoo.registry.events import Events
from zoo.text import table
from zoo.training.folders import write_sweep
from zoo.training.search import trained, variants


def status(study) -> str:
    """The trials table: number, state, parameters, value, epochs run."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    rows = [[t.number, t.state.name.lower(), *(_short(t.params.get(k)) for k in keys),
             "" if t.value is None else f"{t.value:.4f}", t.user_attrs.get("epochs", "")] for t in trials]
    fixed = ("trial", "state", "value", "epochs")
    short = [k.rsplit(".", 1)[-1] for k in keys]  # a parameter's last part, unless another column has it
    heads = [s if s not in fixed and short.count(s) == 1 else k for s, k in zip(short, keys)]
    return table(["trial", "state", *heads, "value", "epochs"], rows)


def _short(value: object) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Finished:
    """A trained variant as its folder records it: what ``zoo_sweep_end`` hands plugins."""

    label: str
    folder: Path
    history: list[dict]
    metrics: dict


def finish_sweep(settings: Settings, folder: Path, study, events: Events, log: Callable[[str], None]) -> list[Path]:
    """After a sweep's grid: sweep.json and sweep.csv in grid order, the table, then ``zoo_sweep_end``."""
    by_label = {t.user_attrs["label"]: t for t in study.get_trials(deepcopy=False)
                if t.state.name == "COMPLETE" and "label" in t.user_attrs}
    runs, index, rows = [], [], []
    for point in variants(settings):
        trial = by_label.get(point.label)
        if trial is None:
            raise ZooError(f"{folder}: the sweep's variant {point.label} has no finished run; rerun to finish it")
        run = trained(folder / trial.user_attrs["run"])
        runs.append(Finished(point.label, run.folder, run.history, run.metrics))
        index.append({"label": point.label, "run": run.folder.name, "values": point.values})
        rows.append({**point.values, **run.metrics})
    write_sweep(folder, settings.name, index)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(folder / "sweep.csv", buffer.getvalue().encode())
    log(table(list(rows[0]), [[f"{v:.4f}" if isinstance(v, float) else v for v in row.values()] for row in rows]))
    log(f"wrote {folder / 'sweep.csv'}")
    events.emit("zoo_sweep_end", name=settings.name, folder=folder, runs=runs, log=log)
    return [run.folder for run in runs]


def plots(study, folder: Path, log: Callable[[str], None]) -> None:
    """Optuna's optimization history, parameter importances and parallel coordinates, as PNGs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"no search plots: {install('plot')}")
        return
    from optuna.visualization import matplotlib as draw

    for name, plot in (("history", draw.plot_optimization_history), ("importances", draw.plot_param_importances),
                       ("parallel", draw.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():  # matplotlib's notes on flat axes of tiny studies
                warnings.simplefilter("ignore", UserWarning)
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few finished trials for this plot
            log(f"no {name}.png: {exc}")
            continue
        figure = getattr(axes, "figure", None) or axes.flat[0].figure
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        figure.savefig(folder / f"{name}.png", dpi=110)
        plt.close(figure)
        log(f"wrote {folder / f'{name}.png'}")
