"""``zoo reproduce``: train a model again from the recipe inside its weights file, on the data it
names, and compare the result with the published tensors -- identical (the same content digest), or
the largest difference, the metrics' deltas and the reasons zoo can see (another torch, CPU
capability, plugin version, data or process count). The last result for a file is kept in
$ZOO_HOME/reproductions/<sha256 prefix>/result.json, which ``zoo card`` shows."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from zoo.errors import ZooError
from zoo.text import clip
from zoo.files import atomic_write_bytes, file_sha256, home, refuse_downloads
from zoo.names import DISTRIBUTION
from zoo.recipe.migrations import migrate
from zoo.recipe.schema import VERSION
from zoo.recipe.space import direction_of
from zoo.registry import Registry
from zoo.training.folders import claim
from zoo.typed import read as read_typed
from zoo.weights.format import read
from zoo.weights.load import load, pins
from zoo.weights.machine import this_machine
from zoo.weights.metadata import WeightsMeta


@dataclass(frozen=True)
class Reproduction:
    """What one ``zoo reproduce`` found."""

    weights: str  # the label of the weights reproduced
    sha256: str  # of their file
    identical: bool  # the same tensors, byte for byte
    tier: str = ""  # identical, reproduced (every recorded metric within its tolerance) or differs
    max_abs_diff: float = 0.0
    worst: str | None = None  # the tensor with the largest difference
    metrics: dict[str, list[float | None]] = field(default_factory=dict)  # name -> [recorded, reproduced]
    reasons: list[str] = field(default_factory=list)  # what differs between the two builds, as far as zoo knows
    run: str = ""  # the reproduction's run folder
    when: str = ""
    seconds: float = 0.0
    torch: str = ""
    cpu: str = ""  # the machine it was reproduced on

    def summary(self) -> str:
        """One line: identical; or reproduced or differs, with each metric against its tolerance, the
        largest difference of the tensors and what zoo sees that explains it."""
        if self.identical:
            return f"{self.weights}: identical (the same tensors, sha256 of the tensors matches)"
        deltas = ", ".join(f"{name} {a:.4f} -> {b:.4f} ({'within' if within(name, a, b) else 'outside'} "
                           f"{_said(name)})" for name, (a, b) in self.metrics.items() if a is not None and b is not None)
        why = f"; {'; '.join(self.reasons)}" if self.reasons else "; no difference zoo records explains it"
        reproduced = (self.tier or tier(self.identical, self.metrics)) == "reproduced"  # (results before tiers)
        head = "reproduced: every recorded metric within its tolerance" if reproduced else "differs"
        return (f"{self.weights}: {head}; {deltas or 'no metric to compare'}; the tensors differ, largest "
                f"difference {self.max_abs_diff:.3g} in {self.worst}{why}")


ACCURACY_TOLERANCE = 0.005  # absolute, for a metric that is better higher (accuracy, f1 ...)
OTHER_TOLERANCE = 0.02  # relative, for a loss or any other number


def within(metric: str, recorded: float, again: float) -> bool:
    """Whether a metric measured again is the recorded one, as far as another machine can promise."""
    if direction_of(metric) == "maximize":
        return abs(again - recorded) <= ACCURACY_TOLERANCE
    return abs(again - recorded) <= OTHER_TOLERANCE * abs(recorded)


def _said(metric: str) -> str:
    return f"±{ACCURACY_TOLERANCE:g}" if direction_of(metric) == "maximize" else f"±{OTHER_TOLERANCE:.0%}"


def tier(identical: bool, metrics: dict[str, list[float | None]]) -> str:
    """identical, reproduced (every recorded metric measured again within its tolerance) or differs."""
    if identical:
        return "identical"
    ok = all(b is not None and within(name, a, b) for name, (a, b) in metrics.items() if a is not None)
    return "reproduced" if ok else "differs"


def folder(sha256: str) -> Path:
    return home() / "reproductions" / sha256[:16]


def last(sha256: str) -> Reproduction | None:
    """The last reproduction of the weights file with this sha256, or None."""
    path = folder(sha256) / "result.json"
    try:
        return read_typed(Reproduction, json.loads(path.read_text()), str(path))
    except (OSError, ValueError, ZooError):
        return None


MAX_STEPS = 100_000  # batches a reproduction trains without --force (epochs x batches per epoch)
MAX_SAMPLES = 10_000_000  # training samples per epoch a reproduction reads without --force
REMOTE = re.compile(r"^(hf-hub:|timm:|[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def fetches(recipe: object, path: str = "") -> list[str]:
    """What a recorded recipe names that zoo would fetch over the network: URLs, Hub names, and
    datasets asked to download their files; each as 'key.path: value'."""
    if isinstance(recipe, dict):
        found = [f"{path}download: true (the dataset's own files)" if key == "download" and value is True else ""
                 for key, value in recipe.items()]
        return [f for f in found if f] + [f for key, value in recipe.items() for f in fetches(value, f"{path}{key}.")]
    if isinstance(recipe, list):
        return [f for i, value in enumerate(recipe) for f in fetches(value, f"{path}{i}.")]
    return [f"{path.rstrip('.')}: {clip(recipe)}"] if isinstance(recipe, str) and REMOTE.match(recipe) else []


def reproduce(name: str, registry: Registry, *, allow_downloads: bool = False, force: bool = False,
              log=print) -> Reproduction:
    """Train ``name``'s recorded recipe again with the plugins of ``registry`` (a reproduction, not a
    build of yours: the store does not file it) and compare; the result is kept for ``zoo card``.
    The file is a stranger's: nothing is fetched over the network unless ``allow_downloads`` (what
    its recipe names is listed first), and a run longer than MAX_STEPS batches or MAX_SAMPLES samples
    an epoch is refused unless ``force``."""
    from zoo.training.build import build

    started = time.perf_counter()
    model = load(name, registry)
    meta, source = model.zoo_meta, model.zoo_source
    if meta.imported:
        raise ZooError(f"{source.label}: {meta.imported.library}'s pretrained {meta.imported.tag}, imported: zoo did not "
                       "train these weights, so they have no recipe to train again (their source and the sha256 of "
                       "the file as published are in zoo card)")
    for section in ("sweep", "search"):
        if meta.recipe.get(section):
            raise ZooError(f"{source.label}: its recorded recipe has a {section} section, which trains many runs, not "
                           "the one that made this file: the file was not written by zoo build as recorded")
    if meta.recipe.get("model") != meta.model:
        raise ZooError(f"{source.label}: its recorded recipe's model ({clip(meta.recipe.get('model'))}) is not the "
                       f"model its tensors fit ({clip(meta.model)}): the file was altered, so there is nothing to "
                       "reproduce")
    named = fetches(meta.recipe)
    if named and not allow_downloads:
        raise ZooError(f"{source.label}: its recipe would fetch {'; '.join(named)}. A reproduction fetches nothing a "
                       "file names unless you allow it: zoo reproduce --allow-downloads")
    if named:
        log(f"reproducing {source.label} fetches what its recipe names: {'; '.join(named)}")
    sha256 = source.sha256 or file_sha256(source.path)
    base = folder(sha256)
    run = claim(base / "run")
    recipe = run / "recipe.yaml"
    atomic_write_bytes(recipe, yaml.safe_dump(migrate(meta.recipe, meta.recipe_version, VERSION),
                                              sort_keys=False).encode())
    refused = f"the reproduction of {source.label} fetches nothing its file names unless run with --allow-downloads"
    with contextlib.nullcontext() if allow_downloads else refuse_downloads(refused):
        if not force:
            _bounded(recipe, registry, meta, source.label)
        [trained] = build(str(recipe), registry=registry, out=run / "train", purpose="reproduction",
                          pins=pins(meta), log=log)
    tensors, again = read(trained / "weights.safetensors")
    identical = again.tensors_sha256 == meta.tensors_sha256
    metrics = {k: [v, again.metrics.get(k)] for k, v in sorted(meta.metrics.items())}
    found = Reproduction(source.label, sha256, identical, tier(identical, metrics), metrics=metrics,
                         reasons=_reasons(meta, again), run=str(run), when=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         seconds=round(time.perf_counter() - started, 1), torch=torch.__version__,
                         cpu=this_machine().describe())
    if not found.identical:
        diff, worst = _largest_difference(model.state_dict(), tensors)
        found = Reproduction(**{**asdict(found), "max_abs_diff": diff, "worst": worst})
    atomic_write_bytes(base / "result.json", json.dumps(asdict(found), indent=1).encode())
    return found


def _bounded(recipe: Path, registry: Registry, meta: WeightsMeta, label: str) -> None:
    """ZooError when the recorded recipe trains more than MAX_STEPS batches or reads more than
    MAX_SAMPLES samples an epoch (its training data is built to count them)."""
    from zoo.assembly.assembler import Assembler
    from zoo.assembly.parts import dataset
    from zoo.training.build import read_recipe

    settings = read_recipe(str(recipe), registry)
    data = settings.data
    samples = len(dataset(Assembler(registry, pins(meta)), data, data.train_split, "train_split"))
    steps = settings.train.epochs * math.ceil(samples / data.batch_size)
    if samples > MAX_SAMPLES or steps > MAX_STEPS:
        raise ZooError(f"{label}: its recipe trains {settings.train.epochs:,} epochs of {samples:,} samples in "
                       f"batches of {data.batch_size:,} ({steps:,} batches); a reproduction trains at most "
                       f"{MAX_STEPS:,} batches of at most {MAX_SAMPLES:,} samples an epoch unless run with --force")


def _largest_difference(published: dict[str, torch.Tensor], again: dict[str, torch.Tensor]) -> tuple[float, str]:
    diffs = {key: (published[key].double() - again[key].double()).abs().max().item()
             for key in published.keys() & again.keys()
             if published[key].shape == again[key].shape and published[key].numel()}
    worst = max(diffs, key=diffs.get)
    return diffs[worst], worst


def _reasons(published: WeightsMeta, again: WeightsMeta) -> list[str]:
    reasons = []
    before, now = published.versions, again.versions
    if before and now:
        for what, a, b in (("torch", before.torch, now.torch), ("zoo", before.zoo, now.zoo)):
            if a != b:
                reasons.append(f"trained with {what} {a}, reproduced with {b}")
        if before.machine and now.machine:
            reasons += [f"another machine: {d}" for d in before.machine.differences(now.machine)]
        elif before.cpu and before.cpu != now.cpu:
            reasons.append(f"trained on a CPU with {before.cpu}, reproduced on one with {now.cpu}")
        elif not before.machine and published.tensors_sha256 != again.tensors_sha256:
            reasons.append(f"the published file does not record its CPU (written before zoo recorded one); "
                           f"reproduced on {now.machine.describe() if now.machine else 'another'}: another CPU or "
                           "BLAS is the likely reason")
        for plugin, version in sorted(before.plugins.items()):
            other = now.plugins.get(plugin)
            if other != version and version.dist not in ("zoo", DISTRIBUTION):  # zoo's own: zoo's version says it
                reasons.append(f"plugin {plugin}: {version.dist} {version.version} then, "
                               + (f"{other.dist} {other.version} now" if other else "not installed now"))
    if published.data_sha256 and again.data_sha256 and published.data_sha256 != again.data_sha256:
        reasons.append("the training data differs (its sha256)")
    if published.processes != again.processes:
        reasons.append(f"trained on {published.processes} processes, reproduced on {again.processes}")
    return reasons
