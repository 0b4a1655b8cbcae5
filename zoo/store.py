"""The local store under ZOO_HOME: the latest build of each recipe name."""

from __future__ import annotations

import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import atomic_path, home
from zoo.registry import NAME


def entry(name: str) -> Path:
    """The store folder of ``name`` (validated: no path can escape the store through a name)."""
    if not NAME.match(name):
        raise ZooError(f"'{name}' is not a valid model name: use kebab-case like mnist-mlp")
    return home() / "models" / name


def record(name: str, weights: Path) -> Path:
    """Copy a built weights file into the store, atomically replacing the previous build."""
    target = entry(name) / "weights.safetensors"
    with atomic_path(target) as tmp:
        shutil.copyfile(weights, tmp)
    return target
