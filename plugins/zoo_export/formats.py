"""The built-in exporters. Each is a class with a ``suffix``, ``write(module, example, path)`` (the
module takes batches like ``example``, whose first dimension is dynamic) and ``read(path)`` (the
exported file as a function of a batch, which zoo checks against the PyTorch model)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from zoo.api import install_hint


def _dynamic() -> tuple[dict]:
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


class Onnx:
    """ONNX (torch.onnx's dynamo exporter), checked with onnxruntime; needs the 'export' extra."""

    suffix = ".onnx"
    needs = ("onnx", "onnxscript", "onnxruntime")
    extra = install_hint("export", "onnx, onnxscript, onnxruntime")

    def write(self, module: nn.Module, example: Tensor, path: Path) -> None:
        torch.onnx.export(module, (example,), str(path), dynamo=True, dynamic_shapes=_dynamic(),
                          input_names=["input"], output_names=["output"], verbose=False, external_data=False)

    def read(self, path: Path) -> Callable[[Tensor], Tensor]:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


class TorchExport:
    """A torch.export program (.pt2), loadable with torch.export.load."""

    suffix = ".pt2"

    def write(self, module: nn.Module, example: Tensor, path: Path) -> None:
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=_dynamic()), str(path))

    def read(self, path: Path) -> Callable[[Tensor], Tensor]:
        return torch.export.load(str(path)).module()


class TorchScript:
    """TorchScript by tracing (deprecated by PyTorch in favour of torch.export; kept for older runtimes)."""

    suffix = ".torchscript.pt"

    def write(self, module: nn.Module, example: Tensor, path: Path) -> None:
        torch.jit.trace(module, example, check_trace=False).save(str(path))

    def read(self, path: Path) -> Callable[[Tensor], Tensor]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path))
