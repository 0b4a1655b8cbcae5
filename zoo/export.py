"""``zoo export``: a model as ONNX, a ``torch.export`` program or TorchScript, with a dynamic batch
dimension, its recipe's evaluation transforms built in, a JSON file of facts beside it (input spec,
labels, source sha256), and a parity check against the PyTorch model that must pass before the
file is written."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

import zoo
from zoo.errors import ZooError
from zoo.files import atomic_path, atomic_write_bytes, file_sha256
from zoo.prediction import Facts, facts
from zoo.transforms import Pipeline

TOLERANCE = 1e-4  # max absolute difference of the outputs, float32
PARITY_BATCHES = (1, 3, 7)
EXTRA = "pip install 'zoo[export]' (onnx, onnxscript, onnxruntime)"


@dataclass(frozen=True)
class Format:
    suffix: str
    write: Callable[[nn.Module, Tensor, Path], None]
    read: Callable[[Path], Callable[[Tensor], Tensor]]  # the exported model, as a function of a batch
    needs: tuple[str, ...] = ()  # modules of the export extra


@dataclass(frozen=True)
class Exported:
    path: Path
    facts: Path  # the JSON beside it
    max_abs_diff: float


class WithTransforms(nn.Module):
    """The model behind its evaluation transforms (normalize ...): what it takes is the input spec."""

    def __init__(self, model: nn.Module, transform: Pipeline | None):
        super().__init__()
        self.model, self.transform = model, transform

    def forward(self, x: Tensor) -> Tensor:
        if self.transform is not None:
            x, _ = self.transform(x, x.new_zeros(x.shape[0]), None)
        return self.model(x)


def _dynamic(x: Tensor) -> tuple[dict]:
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


def _write_onnx(module: nn.Module, x: Tensor, path: Path) -> None:
    torch.onnx.export(module, (x,), str(path), dynamo=True, dynamic_shapes=_dynamic(x), input_names=["input"],
                      output_names=["output"], verbose=False, external_data=False)


def _read_onnx(path: Path) -> Callable[[Tensor], Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def _write_program(module: nn.Module, x: Tensor, path: Path) -> None:
    torch.export.save(torch.export.export(module, (x,), dynamic_shapes=_dynamic(x)), str(path))


def _read_program(path: Path) -> Callable[[Tensor], Tensor]:
    return torch.export.load(str(path)).module()


def _write_script(module: nn.Module, x: Tensor, path: Path) -> None:
    torch.jit.trace(module, x, check_trace=False).save(str(path))


def _read_script(path: Path) -> Callable[[Tensor], Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of torch.export
        return torch.jit.load(str(path))


FORMATS = {
    "onnx": Format(".onnx", _write_onnx, _read_onnx, ("onnx", "onnxscript", "onnxruntime")),
    "torch-export": Format(".pt2", _write_program, _read_program),
    "torchscript": Format(".torchscript.pt", _write_script, _read_script),
}


def samples(spec: dict, batch: int, seed: int = 0) -> Tensor:
    """A batch of valid random inputs for ``spec``: images in their range, token ids with padding."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *spec["shape"])
    if spec["kind"] == "tokens":
        tokens = torch.randint(1, spec["vocab_size"], shape, generator=g)
        lengths = torch.randint(1, shape[1] + 1, (batch, 1), generator=g)
        return tokens.masked_fill(torch.arange(shape[1]) >= lengths, spec.get("pad_id", 0))
    low, high = spec.get("range", [0.0, 1.0]) if spec["kind"] == "image" else (-1.0, 1.0)
    return (low + (high - low) * torch.rand(shape, generator=g)).to(getattr(torch, spec["dtype"]))


def export(model: nn.Module, name: str, out: Path | None = None) -> Exported:
    """Export ``model`` (from ``zoo.load``) in format ``name`` to ``out`` (default: the model's name
    and the format's suffix, here), after a parity check on batches of 1, 3 and 7 samples."""
    if name not in FORMATS:
        raise ZooError(f"unknown export format '{name}'; use one of {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    for module in fmt.needs:
        try:
            __import__(module)
        except ImportError:
            raise ZooError(f"exporting to {name} needs {module}, which is not installed: {EXTRA}") from None
    known = facts(model)
    meta = model.zoo_meta
    out = Path(out) if out else Path(f"{meta['name']}{fmt.suffix}")
    wrapped = WithTransforms(model.float().cpu().eval(), known.transform)
    with atomic_path(out) as tmp, _quiet():
        try:
            fmt.write(wrapped, samples(known.spec, 2), tmp)
        except Exception as exc:
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ZooError(f"{meta['name']} cannot be exported to {name}: {type(exc).__name__}: {first}") from exc
        difference = parity(wrapped, fmt.read(tmp), known)
        if difference > TOLERANCE:
            raise ZooError(f"the {name} export differs from the PyTorch model by up to {difference:.3g} "
                           f"(tolerance {TOLERANCE:g}); nothing was written")
    beside = out.with_name(out.name + ".json")
    atomic_write_bytes(beside, json.dumps(_facts(name, meta, known, difference), indent=2).encode())
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


def _facts(name: str, meta: dict, known: Facts, difference: float) -> dict:
    path = Path(meta["path"])
    return {
        "format": name,
        "model": meta["name"],
        "source": {"path": str(path), "sha256": meta.get("sha256") or file_sha256(path)},
        "input": {**known.spec, "batch": "dynamic (dimension 0)",
                  "note": "the raw input of the spec: the recipe's evaluation transforms are part of the export"},
        "classes": known.classes,
        "parity": {"max_abs_diff": difference, "tolerance": TOLERANCE, "batches": list(PARITY_BATCHES)},
        "versions": {"zoo": zoo.__version__, "torch": torch.__version__},
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
