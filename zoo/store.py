"""The local store under $ZOO_HOME/models: the latest build of each recipe name.

Each build is kept as ``<sha256>.safetensors``; ``entry.json`` names the current one and is replaced
atomically, so concurrent builds of one recipe never leave a pointer to a partial or foreign file.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import SUFFIX, atomic_path, atomic_write_bytes, file_sha256, home, remember_digests
from zoo.registry import NAME


@dataclass(frozen=True)
class LocalBuild:
    name: str
    path: Path
    sha256: str
    recorded: str  # ISO time
    run: str  # the run folder it was built in


def root() -> Path:
    return home() / "models"


def entry(name: str) -> Path:
    """The store folder of ``name`` (validated: no path can escape the store through a name)."""
    if not NAME.match(name):
        raise ZooError(f"'{name}' is not a valid model name: use kebab-case like mnist-mlp")
    return root() / name


def record(name: str, weights: Path) -> Path:
    """Copy a built weights file into the store and make it the current build of ``name``."""
    folder = entry(name)
    sha256 = file_sha256(weights)
    target = folder / f"{sha256}{SUFFIX}"
    if not target.is_file():
        with atomic_path(target) as tmp:
            shutil.copyfile(weights, tmp)
        remember_digests(target, sha256=sha256)
    previous = latest(name)
    pointer = {"sha256": sha256, "file": target.name, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "run": str(Path(weights).parent.resolve())}
    atomic_write_bytes(folder / "entry.json", json.dumps(pointer, indent=1).encode())
    if previous is not None and previous.path != target:
        with contextlib.suppress(OSError):
            previous.path.unlink()
    return target


def latest(name: str) -> LocalBuild | None:
    """The current build of ``name``, or None."""
    folder = entry(name)
    try:
        pointer = json.loads((folder / "entry.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ZooError(f"{folder / 'entry.json'} is unreadable ({exc}); delete {folder} and build again") from exc
    path = folder / Path(pointer["file"]).name
    if not path.is_file():
        raise ZooError(f"the store entry of '{name}' points at a missing file {path}; build it again")
    return LocalBuild(name, path, pointer["sha256"], pointer.get("recorded", ""), pointer.get("run", ""))


def names() -> list[str]:
    if not root().is_dir():
        return []
    return sorted(p.name for p in root().iterdir() if (p / "entry.json").is_file() and NAME.match(p.name))
