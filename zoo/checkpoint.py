"""Training checkpoints as safetensors: tensors by key, everything else as JSON metadata. No pickle."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoo.errors import ZooError
from zoo.weights import read_meta, write

FORMAT = "zoo-checkpoint/1"


def split(state: object, prefix: str, tensors: dict[str, torch.Tensor]) -> object:
    """JSON-able skeleton of a nested state, its tensors moved into ``tensors`` under dotted keys."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().to("cpu").clone().contiguous()
        return {"$tensor": prefix}
    if isinstance(state, dict):
        return {"$dict": [[k, split(v, f"{prefix}.{k}", tensors)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        items = [split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)]
        return {"$tuple": items} if isinstance(state, tuple) else items
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise ZooError(f"cannot checkpoint a {type(state).__name__} at {prefix}")


def join(skeleton: object, tensors: dict[str, torch.Tensor]) -> object:
    """The inverse of :func:`split`."""
    if isinstance(skeleton, list):
        return [join(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "$tensor" in skeleton:
            return tensors[skeleton["$tensor"]]
        if "$tuple" in skeleton:
            return tuple(join(v, tensors) for v in skeleton["$tuple"])
        return {k: join(v, tensors) for k, v in skeleton["$dict"]}
    return skeleton


def save(path: Path, state: dict, fingerprint: str) -> None:
    """Write ``state`` (nested dicts of tensors and plain values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split(state, "state", tensors)
    write(path, tensors, {"format": FORMAT, "fingerprint": fingerprint, "skeleton": skeleton})


def load(path: Path, fingerprint: str) -> dict:
    """Read a checkpoint written for the same recipe (same ``fingerprint``), else raise ZooError."""
    try:
        tensors = load_file(str(path))
        metadata = read_meta(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ZooError(f"checkpoint {path} is unreadable ({exc}); delete it to start over") from exc
    if metadata.get("format") != FORMAT:
        raise ZooError(f"{path} is not a zoo checkpoint")
    if metadata.get("fingerprint") != fingerprint:
        raise ZooError(
            f"checkpoint {path} was written by a different recipe; resuming would mix two runs. "
            "Run without --resume to start over, or use the recipe it was made with"
        )
    return join(metadata["skeleton"], tensors)
