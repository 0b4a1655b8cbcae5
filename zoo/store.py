"""The local store under $ZOO_HOME/models: every build of each recipe name, numbered, kept until pruned.

    NAME/<sha256>.safetensors   the weights of each distinct build
    NAME/versions/<N>.json      build N: its sha256, time, run folder, metrics and recipe. Created
                                whole with os.link, which fails if N exists: concurrent builds never
                                take the same number
    NAME/entry.json             {"version": N}: the latest build, replaced atomically

``NAME`` or ``NAME@latest`` is the latest build, ``NAME@3`` build 3, ``NAME@1a2b3c`` the build whose
sha256 starts so.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import SUFFIX, atomic_path, atomic_write_bytes, file_sha256, home, remember_digests
from zoo.registry import NAME


@dataclass(frozen=True)
class LocalBuild:
    """One build in the store."""

    name: str
    version: int
    sha256: str
    recorded: str  # ISO time
    run: str  # the run folder it was built in
    metrics: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return entry(self.name) / f"{self.sha256}{SUFFIX}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def root() -> Path:
    return home() / "models"


def entry(name: str) -> Path:
    """The store folder of ``name`` (validated: no path can escape the store through a name)."""
    if not NAME.match(name):
        raise ZooError(f"'{name}' is not a valid model name: use kebab-case like mnist-mlp")
    return root() / name


def split(text: str) -> tuple[str, str | None]:
    """'mnist-mlp@3' -> ('mnist-mlp', '3'); 'mnist-mlp' -> ('mnist-mlp', None)."""
    name, sep, version = text.partition("@")
    return name, (version if sep else None)


def record(name: str, weights: Path, metrics: dict | None = None, recipe: dict | None = None) -> LocalBuild:
    """File a built weights file in the store as the next version of ``name`` (or, when an earlier
    version has the very same bytes, as that one again) and make it the latest."""
    folder = entry(name)
    sha256 = file_sha256(weights)
    target = folder / f"{sha256}{SUFFIX}"
    if not target.is_file():
        with atomic_path(target) as tmp:
            shutil.copyfile(weights, tmp)
        remember_digests(target, sha256=sha256)
    build = next((b for b in builds(name) if b.sha256 == sha256), None)
    if build is None:
        build = _add_version(folder, name, sha256, str(Path(weights).parent.resolve()), metrics or {}, recipe or {})
    atomic_write_bytes(folder / "entry.json", json.dumps({"version": build.version}).encode())
    return build


def _add_version(folder: Path, name: str, sha256: str, run: str, metrics: dict, recipe: dict) -> LocalBuild:
    versions = folder / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    recorded = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    fd, tmp = tempfile.mkstemp(dir=versions, prefix=".new-", suffix=".json")
    try:
        for number in itertools.count(max((b.version for b in builds(name)), default=0) + 1):
            build = LocalBuild(name, number, sha256, recorded, run, metrics, recipe)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({k: v for k, v in asdict(build).items() if k != "name"}, indent=1).encode(), 0)
            os.fsync(fd)
            try:
                os.link(tmp, versions / f"{number}.json")
                return build
            except FileExistsError:
                continue  # another build took this number first
    finally:
        os.close(fd)
        os.unlink(tmp)


def builds(name: str) -> list[LocalBuild]:
    """Every build of ``name`` in the store, oldest first."""
    folder = entry(name)
    _upgrade(folder)
    found = []
    for path in (folder / "versions").glob("*.json"):
        if not path.stem.isdigit():
            continue
        try:
            data = json.loads(path.read_text())
            found.append(LocalBuild(name, int(path.stem), data["sha256"], data.get("recorded", ""),
                                    data.get("run", ""), data.get("metrics", {}), data.get("recipe", {})))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZooError(f"{path} is unreadable ({exc}); delete it (that build is then forgotten)") from exc
    return sorted(found, key=lambda b: b.version)


def _upgrade(folder: Path) -> None:
    """A store written before versions (entry.json naming a file) becomes version 1."""
    try:
        pointer = json.loads((folder / "entry.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(pointer, dict) and "version" not in pointer and "sha256" in pointer:
        (folder / "versions").mkdir(exist_ok=True)
        old = {"version": 1, **{k: pointer.get(k, "") for k in ("sha256", "recorded", "run")}}
        with contextlib.suppress(FileExistsError):
            atomic_write_bytes(folder / "versions" / "1.json", json.dumps(old, indent=1).encode())
        atomic_write_bytes(folder / "entry.json", json.dumps({"version": 1}).encode())


def latest(name: str) -> LocalBuild | None:
    """The latest build of ``name``, or None."""
    return get(name, None, missing_ok=True)


def get(name: str, version: str | int | None, missing_ok: bool = False) -> LocalBuild | None:
    """Build ``version`` of ``name``: None or 'latest' for the latest, a number, or a sha256 prefix."""
    folder = entry(name)
    known = builds(name)
    if not known:
        if missing_ok:
            return None
        raise ZooError(f"no local build of '{name}': run 'zoo build {name}' first")
    if version in (None, "latest"):
        try:
            wanted = json.loads((folder / "entry.json").read_text())["version"]
        except (OSError, ValueError, KeyError, TypeError):
            wanted = known[-1].version
        matches = [b for b in known if b.version == wanted] or known[-1:]
    elif isinstance(version, int) or str(version).isdigit():
        matches = [b for b in known if b.version == int(version)]
    else:
        matches = [b for b in known if b.sha256.startswith(str(version).lower())] if len(str(version)) >= 4 else []
    if len(matches) != 1:
        listed = ", ".join(f"@{b.version} ({b.sha256[:8]})" for b in known)
        why = "matches several builds" if matches else "is not one of its builds"
        raise ZooError(f"'{name}@{version}' {why}; '{name}' has {listed}. A version is a number, 'latest', "
                       "or 4+ hex digits of the sha256")
    build = matches[0]
    if not build.path.is_file():
        raise ZooError(f"{build.label} points at a missing file {build.path}; build it again or prune it")
    return build


def prune(name: str, keep: int) -> list[LocalBuild]:
    """Delete all but the newest ``keep`` builds of ``name`` (never the latest); return what went."""
    if keep < 1:
        raise ZooError(f"--keep must be at least 1 (the latest build is always kept), got {keep}")
    known = builds(name)
    latest_build = latest(name)
    kept = {b.version for b in known[-keep:]} | ({latest_build.version} if latest_build else set())
    gone = [b for b in known if b.version not in kept]
    kept_files = {b.sha256 for b in known if b.version in kept}
    for build in gone:
        with contextlib.suppress(FileNotFoundError):
            (entry(name) / "versions" / f"{build.version}.json").unlink()
        if build.sha256 not in kept_files:
            with contextlib.suppress(FileNotFoundError):
                build.path.unlink()
    return gone


def names() -> list[str]:
    if not root().is_dir():
        return []
    return sorted(p.name for p in root().iterdir() if (p / "entry.json").is_file() and NAME.match(p.name))

