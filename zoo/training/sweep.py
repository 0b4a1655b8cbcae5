"""Sweeps: one run per combination of the values a recipe's ``sweep`` lists, and a table of all."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.files import atomic_write_bytes
from zoo.recipe.parse import RecipeError, raise_all
from zoo.recipe.schema import Settings, validate
from zoo.registry.events import Events
from zoo.text import table
from zoo.training.folders import write_sweep
from zoo.training.run import Run


@dataclass(frozen=True)
class Variant:
    """One combination of a sweep's values: its label, its folder's name, its values by key path and
    its validated settings."""

    label: str
    slug: str
    values: dict
    settings: Settings


def variants(settings: Settings) -> list[Variant]:
    """Each combination of the sweep's values, in order."""
    keys = list(settings.sweep)
    found = []
    for number, combo in enumerate(itertools.product(*(settings.sweep[k] for k in keys)), start=1):
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={_text(v)}" for k, v in zip(keys, combo))
        slug = _slug("-".join(f"{k.rsplit('.', 1)[-1]}-{_text(v)}" for k, v in zip(keys, combo))) or f"variant-{number}"
        try:
            recipe = settings.recipe.with_overrides(zip(keys, combo))
            del recipe.data["sweep"]
            found.append(Variant(label, slug, dict(zip(keys, combo)), validate(recipe)))
        except RecipeError as exc:  # located where the sweep sets the key
            raise_all([RecipeError(f"sweep variant {label}: {e.reason}", e.mark, e.path)
                       for e in getattr(exc, "errors", [exc])])
    return found


def _text(value: object) -> str:
    """A sweep value as YAML writes it: null, true, 0.001, [1, 2], or the string itself."""
    return value if isinstance(value, str) else json.dumps(value)


def _slug(text: str) -> str:
    """A folder name from a label: letters, digits, single dots and single hyphens, never a path."""
    return re.sub(r"(?:[^A-Za-z0-9.]|\.{2,})+", "-", text.replace("_", "-")).strip("-.")[:100]


def run_sweep(settings: Settings, out: Path, train: Callable[..., Run], events: Events,
              log: Callable[[str], None]) -> list[Path]:
    """Train every variant with ``train(settings, base, sweep=label)``, which claims a free folder of
    ``base`` (out/its-values, or out/its-values-2 ...) like any run's; write sweep.json and sweep.csv,
    print the table, then send ``zoo_sweep_end``."""
    done, index, rows = [], [], []
    for variant in variants(settings):
        log(f"--- {settings.name}: {variant.label}")
        run = train(variant.settings, out / variant.slug, sweep=variant.label)
        done.append(run)
        index.append({"label": variant.label, "run": run.folder.name, "values": variant.values})
        rows.append({**variant.values, **run.metrics})
    write_sweep(out, settings.name, index)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "sweep.csv", buffer.getvalue().encode())
    log(table(list(rows[0]), [[f"{v:.4f}" if isinstance(v, float) else v for v in row.values()] for row in rows]))
    log(f"wrote {out / 'sweep.csv'}")
    events.emit("zoo_sweep_end", name=settings.name, folder=out, runs=done, log=log)
    return [run.folder for run in done]
