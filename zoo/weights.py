"""Weights files: plain safetensors whose metadata describes the model, its recipe and its scores.

All of zoo's metadata sits under one key, ``"zoo"``, as a JSON object with sorted keys: safetensors
writes its metadata map in random order (safetensors issue #584), and a single entry keeps the
bytes of identical builds identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.files import atomic_path

FORMAT = "zoo-weights/1"
META_KEY = "zoo"


def fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the sorted (name, shape, dtype) list: what a model's weights must look like."""
    layout = sorted((name, list(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in state.items())
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()


def content_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the tensors' bytes in name order: catches corruption inside tensor data."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> None:
    """Write tensors and JSON-able ``meta`` as a safetensors file, atomically."""
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def read_meta(path: Path) -> dict:
    """zoo's metadata of a safetensors file ({} when it has none)."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get(META_KEY, "{}"))


def save(model: torch.nn.Module, path: Path, meta: Mapping[str, object]) -> None:
    """Write the model's state dict with ``meta``, its format, its layout fingerprint and content digest."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write(path, state, {**meta, "format": FORMAT, "fingerprint": fingerprint(state), "tensors_sha256": content_digest(state)})
