"""``zoo export``: a model in any registered export format (``zoo list --kind exporter``: ONNX, a
``torch.export`` program, TorchScript, or a plugin's), with a dynamic batch dimension, its recipe's
evaluation transforms (and an imported model's normalization) built in, a JSON file of facts beside it (input spec, labels, source sha256),
and a parity check against the PyTorch model that must pass before the file is written."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import torch
from torch import Tensor, nn

from zoo.weights.spec import InputSpec
from zoo.assembly.transforms import Pipeline
from zoo.errors import ZooError
from zoo.names import DISTRIBUTION
from zoo.files import atomic_path, atomic_write_bytes, file_sha256
from zoo.registry import Registry
from zoo.use.predict import Facts, facts

TOLERANCE = 1e-4  # max absolute difference of the outputs, float32
PARITY_BATCHES = (1, 3, 7)


@dataclass(frozen=True)
class Exported:
    path: Path
    facts: Path  # the JSON beside it
    max_abs_diff: float


class WithTransforms(nn.Module):
    """The model behind its input spec's normalization (an imported model's mean and std) and its
    evaluation transforms: it takes what the input spec says, pixels in [0, 1] for an image."""

    def __init__(self, model: nn.Module, transform: Pipeline | None, spec: InputSpec):
        super().__init__()
        self.model, self.transform = model, transform
        p = spec.preprocess
        self.mean = None if p is None else torch.tensor(p.mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = None if p is None else torch.tensor(p.std, dtype=torch.float32).reshape(-1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.mean is not None:  # as torchvision's Normalize: subtract, then divide
            x = (x - self.mean) / self.std
        if self.transform is not None:
            x, _ = self.transform(x, x.new_zeros(x.shape[0]), None)
        return self.model(x)


def samples(spec: InputSpec, batch: int, seed: int = 0) -> Tensor:
    """A batch of valid random inputs for ``spec``: images in their range, token ids with padding."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *spec.shape)
    if spec.kind == "tokens":
        tokens = torch.randint(1, spec.vocab_size, shape, generator=g)
        lengths = torch.randint(1, shape[1] + 1, (batch, 1), generator=g)
        return tokens.masked_fill(torch.arange(shape[1]) >= lengths, spec.pad_id)
    low, high = (spec.range or (0.0, 1.0)) if spec.kind == "image" else (-1.0, 1.0)
    return (low + (high - low) * torch.rand(shape, generator=g)).to(getattr(torch, spec.dtype))


def export(model: nn.Module, name: str, registry: Registry, out: Path | None = None) -> Exported:
    """Export ``model`` (from ``zoo.load``) with the exporter ``name`` to ``out`` (default: the model's
    name and the format's suffix, here), after a parity check on batches of 1, 3 and 7 samples."""
    exporter = registry.get(name, "exporter").build()
    for module in getattr(exporter, "needs", ()):
        try:
            importlib.import_module(module)
        except ImportError:
            extra = getattr(exporter, "extra", f"pip install {module}")
            raise ZooError(f"exporting to {name} needs {module}, which is not installed: {extra}") from None
    known = facts(model, registry)
    meta = model.zoo_meta
    out = Path(out) if out else Path(f"{meta.name}{exporter.suffix}")  # a name the metadata check passed
    if out.is_dir():
        raise ZooError(f"--out {out} is a folder; give the file to write")
    wrapped = WithTransforms(model.float().cpu().eval(), known.transform, known.spec)
    with atomic_path(out) as tmp, _quiet():
        try:
            exporter.write(wrapped, samples(known.spec, 2), tmp)
        except Exception as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ZooError(f"{meta.name} cannot be exported to {name}: {type(exc).__name__}: {first}") from exc
        difference = parity(wrapped, exporter.read(tmp), known)
        if difference > TOLERANCE:
            raise ZooError(f"the {name} export differs from the PyTorch model by up to {difference:.3g} "
                           f"(tolerance {TOLERANCE:g}); nothing was written")
    beside = out.with_name(out.name + ".json")
    atomic_write_bytes(beside, json.dumps(_facts(name, model, known, difference), indent=2).encode())
    return Exported(out, beside, difference)


def parity(model: nn.Module, exported: Callable[[Tensor], Tensor], known: Facts) -> float:
    """The largest absolute difference between the two on random valid batches of 1, 3 and 7."""
    worst = 0.0
    with torch.no_grad():
        for seed, batch in enumerate(PARITY_BATCHES, start=1):
            x = samples(known.spec, batch, seed)
            expected, got = model(x), exported(x)
            if tuple(got.shape) != tuple(expected.shape):
                raise ZooError(f"the export gives shape {tuple(got.shape)} for a batch of {batch}, the model "
                               f"{tuple(expected.shape)}")
            worst = max(worst, (got.float() - expected.float()).abs().max().item())
    return worst


def _facts(name: str, model: nn.Module, known: Facts, difference: float) -> dict:
    source = model.zoo_source
    return {
        "format": name,
        "model": model.zoo_meta.name,
        "source": {"path": str(source.path), "sha256": source.sha256 or file_sha256(source.path)},
        "input": {**dataclasses.asdict(known.spec), "batch": "dynamic (dimension 0)",
                  "note": "the raw input of the spec: the recipe's evaluation transforms are part of the export"},
        "classes": known.classes,
        "parity": {"max_abs_diff": difference, "tolerance": TOLERANCE, "batches": list(PARITY_BATCHES)},
        "versions": {"zoo": version(DISTRIBUTION), "torch": torch.__version__},
    }


@contextlib.contextmanager
def _quiet():
    """Without the exporters' progress lines, warnings and log records."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
