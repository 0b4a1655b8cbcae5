"""The local store under $ZOO_HOME/models: every build of each recipe name, numbered, kept until pruned.

    NAME/<sha256>.safetensors   the weights, one file per distinct content (identical builds share it)
    NAME/versions/<N>.json      build N: its sha256, time, run folder, metrics and recipe
    NAME/entry.json             {"version": N}: the latest build, replaced atomically
    NAME/.lock                  held while a build is recorded or builds are pruned

One rule: every build is a version, with its own run folder and record, even when its file is byte
for byte an earlier one's. ``NAME@latest`` is the latest build, ``NAME@3`` build 3, ``NAME@1a2b3c``
the build whose sha256 starts so (the latest of them, when several builds share that file).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import SUFFIX, atomic_path, atomic_write_bytes, file_sha256, home, remember_digests
from zoo.names import check, is_name

LOCK_TIMEOUT = 120  # seconds to wait for another zoo recording or pruning the same name


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
    origin: dict = field(default_factory=dict)  # how it was chosen, when not by one build: a search's trial

    @property
    def path(self) -> Path:
        return entry(self.name) / f"{self.sha256}{SUFFIX}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def root() -> Path:
    return home() / "models"


def entry(name: str) -> Path:
    """The store folder of ``name`` (checked: no path can escape the store through a name)."""
    return root() / check(name, "model name")


def split(text: str) -> tuple[str, str | None]:
    """'mnist-mlp@3' -> ('mnist-mlp', '3'); 'mnist-mlp' -> ('mnist-mlp', None)."""
    name, sep, version = text.partition("@")
    return name, (version if sep else None)


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """Hold the store lock of ``name`` (across processes): recording and pruning take turns."""
    from filelock import FileLock, Timeout

    folder = entry(name)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT)
    try:
        with lock:
            yield folder
    except Timeout:
        raise ZooError(f"the store entry {folder} stayed locked for {LOCK_TIMEOUT} s by another zoo (recording "
                       "or pruning); try again, or delete its .lock file if no zoo is running") from None


def record(name: str, weights: Path, origin: dict | None = None) -> LocalBuild:
    """File a built weights file in the store as the next version of ``name`` and make it the latest,
    with the metrics and recipe the file records (its ``meta.metrics``: the one source of a build's
    figures). The file's bytes are stored once, whatever the number of builds that have them.
    ``origin`` says how it was chosen when that is more than one build (a search: its folder, trial
    and parameters)."""
    from zoo.weights.format import read_meta  # imports torch, which zoo list does without

    meta = read_meta(weights)
    sha256 = file_sha256(weights)
    with locked(name) as folder:
        target = folder / f"{sha256}{SUFFIX}"
        if not target.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(weights, tmp)
            remember_digests(target, sha256=sha256)
        number = max((b.version for b in builds(name)), default=0) + 1
        build = LocalBuild(name, number, sha256, time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           str(Path(weights).parent.resolve()), dict(meta.metrics), meta.recipe, origin or {})
        record_ = {k: v for k, v in asdict(build).items() if k != "name"}
        atomic_write_bytes(folder / "versions" / f"{number}.json", json.dumps(record_, indent=1).encode())
        atomic_write_bytes(folder / "entry.json", json.dumps({"version": number}).encode())
    return build


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
            build = LocalBuild(name, int(path.stem), data["sha256"], data.get("recorded", ""),
                               data.get("run", ""), data.get("metrics", {}), data.get("recipe", {}),
                               data.get("origin", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZooError(f"{path} is unreadable ({exc}); delete it (that build is then forgotten)") from exc
        if not (isinstance(build.sha256, str) and re.fullmatch(r"[0-9a-f]{64}", build.sha256)):
            raise ZooError(f"{path}: its sha256 {build.sha256!r} is not 64 hex digits; delete it")
        found.append(build)
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
        if not (folder / "versions" / "1.json").exists():
            atomic_write_bytes(folder / "versions" / "1.json", json.dumps(old, indent=1).encode())
        atomic_write_bytes(folder / "entry.json", json.dumps({"version": 1}).encode())


def latest(name: str) -> LocalBuild | None:
    """The latest build of ``name``, or None."""
    return get(name, None, missing_ok=True)


def get(name: str, version: str | int | None, missing_ok: bool = False) -> LocalBuild | None:
    """Build ``version`` of ``name``: None or 'latest' for the latest, 'best' for the best by its
    recipe's first metric, a number, or a sha256 prefix."""
    folder = entry(name)
    known = builds(name)
    if not known:
        if missing_ok:
            return None
        raise ZooError(f"no local build of '{name}': run 'zoo build {name}' first")
    if version == "best":
        return best(name, known)
    if version in (None, "latest"):
        try:
            wanted = json.loads((folder / "entry.json").read_text())["version"]
        except (OSError, ValueError, KeyError, TypeError):
            wanted = known[-1].version
        matches = [b for b in known if b.version == wanted] or known[-1:]
    else:  # a build number, else (4+ hex digits, even all of them digits) a sha256 prefix
        text = str(version).lower()
        matches = [b for b in known if text.isdigit() and b.version == int(text)]
        if not matches and len(text) >= 4:
            matches = [b for b in known if b.sha256.startswith(text)]
            if len({b.sha256 for b in matches}) == 1:
                matches = matches[-1:]  # one file, several builds: the latest of them
    if len(matches) != 1:
        listed = ", ".join(f"@{b.version} ({b.sha256[:8]})" for b in known)
        why = "matches several files" if matches else "is not one of its builds"
        raise ZooError(f"'{name}@{version}' {why}; '{name}' has {listed}. A version is a number, 'latest', "
                       "or 4+ hex digits of the sha256")
    build = matches[0]
    if not build.path.is_file():
        raise ZooError(f"{build.label} points at a missing file {build.path}; build it again or prune it")
    return build


def best(name: str, known: list[LocalBuild]) -> LocalBuild:
    """The build with the best recorded value of its recipe's first metric (the latest build's recipe
    says which: its first evaluation metric, else its evaluation loss, else its training loss)."""
    from zoo.recipe.space import direction_of  # the rule for which way a metric is better

    recipe = known[-1].recipe
    data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    split, metrics = data.get("eval_split", "test"), recipe.get("metrics") or []
    first = metrics[0] if metrics else None
    component = first.get("component") if isinstance(first, dict) else first
    metric = (f"{split}_{str(component).rpartition(':')[2].replace('-', '_')}" if split and component else
              f"{split}_loss" if split else "train_loss")
    scored = [b for b in known if isinstance(b.metrics.get(metric), (int, float))]
    if not scored:
        raise ZooError(f"'{name}@best' is the build with the best {metric}, which none of its builds records")
    sign = 1 if direction_of(metric) == "maximize" else -1
    return max(scored, key=lambda b: (sign * b.metrics[metric], b.version))


def prune(name: str, keep: int, dry_run: bool = False) -> list[LocalBuild]:
    """Delete all but the newest ``keep`` builds of ``name`` (never the latest); return what went (with
    ``dry_run``: what would go, deleting nothing). A file goes with the last build that has it."""
    if keep < 1:
        raise ZooError(f"--keep must be at least 1 (the latest build is always kept), got {keep}")
    with locked(name) as folder:
        known = builds(name)
        latest_build = latest(name)
        kept = {b.version for b in known[-keep:]} | ({latest_build.version} if latest_build else set())
        gone = [b for b in known if b.version not in kept]
        kept_files = {b.sha256 for b in known if b.version in kept}
        for build in [] if dry_run else gone:
            with contextlib.suppress(FileNotFoundError):
                (folder / "versions" / f"{build.version}.json").unlink()
            if build.sha256 not in kept_files:
                with contextlib.suppress(FileNotFoundError):
                    build.path.unlink()
    return gone


def names() -> list[str]:
    """The names the store holds builds of."""
    if not root().is_dir():
        return []
    return sorted(p.name for p in root().iterdir() if (p / "entry.json").is_file() and is_name(p.name))
