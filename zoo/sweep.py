"""Sweeps: one run per combination of the values a recipe's ``sweep`` lists, and a table of all."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable
from pathlib import Path

from zoo import runs, schema
from zoo.files import atomic_write_bytes
from zoo.recipe import RecipeError, raise_all
from zoo.registry import Hooks
from zoo.runs import Run
from zoo.schema import Settings
from zoo.text import table


def variants(settings: Settings) -> list[tuple[str, str, dict, Settings]]:
    """Each combination: its label, its folder name, its values by key path, and its validated settings."""
    keys = list(settings.sweep)
    found = []
    for combo in itertools.product(*(settings.sweep[k] for k in keys)):
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combo))
        slug = "-".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in zip(keys, combo)).replace("_", "-")
        try:
            recipe = settings.recipe.with_overrides(zip(keys, combo))
            del recipe.data["sweep"]
            found.append((label, slug, dict(zip(keys, combo)), schema.validate(recipe)))
        except RecipeError as exc:  # located where the sweep sets the key
            raise_all([RecipeError(f"sweep variant {label}: {e.reason}", e.mark, e.path)
                       for e in getattr(exc, "errors", [exc])])
    return found


def run_sweep(settings: Settings, out: Path, train: Callable[..., Run], hooks: Hooks,
              log: Callable[[str], None]) -> list[Path]:
    """Train every variant into ``out`` with ``train(settings, folder, sweep=label)``; write sweep.json
    and sweep.csv, print the table, then call ``hooks.zoo_sweep_end``."""
    done, index, rows = [], [], []
    for label, slug, values, variant in variants(settings):
        log(f"--- {settings.name}: {label}")
        run = train(variant, out / slug, sweep=label)
        done.append(run)
        metrics = run.metrics
        index.append({"label": label, "run": slug, "values": values})
        rows.append({**values, **metrics})
    runs.write_sweep(out, settings.name, index)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "sweep.csv", buffer.getvalue().encode())
    log(table(list(rows[0]), [[f"{v:.4f}" if isinstance(v, float) else v for v in row.values()] for row in rows]))
    log(f"wrote {out / 'sweep.csv'}")
    hooks.zoo_sweep_end(name=settings.name, folder=out, runs=done, log=log)
    return [run.folder for run in done]
