"""``zoo reproduce``: train a model again from the recipe inside its weights file, on the data it
names, and compare the result with the published tensors -- identical (the same content digest), or
the largest difference, the metrics' deltas and the reasons zoo can see (another torch, CPU
capability, plugin version, data or process count). The last result for a file is kept in
$ZOO_HOME/reproductions/<sha256 prefix>/result.json, which ``zoo card`` shows."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from zoo.errors import ZooError
from zoo.files import atomic_write_bytes, file_sha256, home
from zoo.recipe.migrations import migrate
from zoo.recipe.schema import VERSION
from zoo.registry import Registry
from zoo.training.folders import claim
from zoo.typed import read as read_typed
from zoo.weights.format import read
from zoo.weights.load import load, pins
from zoo.weights.metadata import WeightsMeta


@dataclass(frozen=True)
class Reproduction:
    """What one ``zoo reproduce`` found."""

    weights: str  # the label of the weights reproduced
    sha256: str  # of their file
    identical: bool  # the same tensors, byte for byte
    max_abs_diff: float = 0.0
    worst: str | None = None  # the tensor with the largest difference
    metrics: dict[str, list[float | None]] = field(default_factory=dict)  # name -> [recorded, reproduced]
    reasons: list[str] = field(default_factory=list)  # what differs between the two builds, as far as zoo knows
    run: str = ""  # the reproduction's run folder
    when: str = ""
    seconds: float = 0.0
    torch: str = ""
    cpu: str = ""

    def summary(self) -> str:
        """One line: 'identical' or the largest difference and the metric deltas."""
        if self.identical:
            return f"{self.weights}: identical (the same tensors, sha256 of the tensors matches)"
        deltas = ", ".join(f"{name} {a:.4f} -> {b:.4f}" for name, (a, b) in self.metrics.items()
                           if a is not None and b is not None)
        why = f"; {'; '.join(self.reasons)}" if self.reasons else "; no difference zoo records explains it"
        return (f"{self.weights}: differs: largest difference {self.max_abs_diff:.3g} in {self.worst}"
                + (f"; {deltas}" if deltas else "") + why)


def folder(sha256: str) -> Path:
    return home() / "reproductions" / sha256[:16]


def last(sha256: str) -> Reproduction | None:
    """The last reproduction of the weights file with this sha256, or None."""
    path = folder(sha256) / "result.json"
    try:
        return read_typed(Reproduction, json.loads(path.read_text()), str(path))
    except (OSError, ValueError, ZooError):
        return None


def reproduce(name: str, registry: Registry, *, log=print) -> Reproduction:
    """Train ``name``'s recorded recipe again with the plugins of ``registry`` (a reproduction, not a
    build of yours: the store does not file it) and compare; the result is kept for ``zoo card``."""
    from zoo.training.build import build

    started = time.perf_counter()
    model = load(name, registry)
    meta, source = model.zoo_meta, model.zoo_source
    sha256 = source.sha256 or file_sha256(source.path)
    base = folder(sha256)
    run = claim(base / "run")
    recipe = run / "recipe.yaml"
    atomic_write_bytes(recipe, yaml.safe_dump(migrate(meta.recipe, meta.recipe_version, VERSION),
                                              sort_keys=False).encode())
    [trained] = build(str(recipe), registry=registry, out=run / "train", purpose="reproduction", pins=pins(meta),
                      log=log)
    tensors, again = read(trained / "weights.safetensors")
    found = Reproduction(source.label, sha256, again.tensors_sha256 == meta.tensors_sha256,
                         metrics={k: [v, again.metrics.get(k)] for k, v in sorted(meta.metrics.items())},
                         reasons=_reasons(meta, again), run=str(run), when=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         seconds=round(time.perf_counter() - started, 1), torch=torch.__version__,
                         cpu=torch.backends.cpu.get_cpu_capability())
    if not found.identical:
        diff, worst = _largest_difference(model.state_dict(), tensors)
        found = Reproduction(**{**asdict(found), "max_abs_diff": diff, "worst": worst})
    atomic_write_bytes(base / "result.json", json.dumps(asdict(found), indent=1).encode())
    return found


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
        if before.cpu and before.cpu != now.cpu:
            reasons.append(f"trained on a CPU with {before.cpu}, reproduced on one with {now.cpu}")
        for plugin, version in sorted(before.plugins.items()):
            other = now.plugins.get(plugin)
            if other != version:
                reasons.append(f"plugin {plugin}: {version.dist} {version.version} then, "
                               + (f"{other.dist} {other.version} now" if other else "not installed now"))
    if published.data_sha256 and again.data_sha256 and published.data_sha256 != again.data_sha256:
        reasons.append("the training data differs (its sha256)")
    if published.processes != again.processes:
        reasons.append(f"trained on {published.processes} processes, reproduced on {again.processes}")
    return reasons
