"""Weights files, both ways: plain safetensors whose metadata (one typed record,
:class:`zoo.weights.metadata.WeightsMeta`) describes the model, its recipe and its scores;
:func:`save` writes one, :func:`read` returns its verified tensors and metadata.

All of zoo's metadata sits under one key, ``"zoo"``, as a JSON object with sorted keys: safetensors
writes its metadata map in random order (safetensors issue #584), and a single entry keeps the
bytes of identical builds identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from zoo.errors import ZooError
from zoo.files import atomic_path, known_digests, remember_digests, stream_sha256
from zoo.weights.metadata import WeightsMeta, parse

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
        digest.update(_bytes(state[name]))
    return digest.hexdigest()


def file_content_digest(path: Path) -> str:
    """:func:`content_digest` of a safetensors file's tensors, read from the file in name order through
    one reused buffer (neither mapped nor copied whole). The file must have passed :func:`read_raw`."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(1 << 20))
    with open(path, "rb", buffering=0) as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        for name in sorted(header.keys() - {"__metadata__"}):
            begin, end = header[name]["data_offsets"]
            digest.update(name.encode())
            f.seek(8 + size + begin)
            while begin < end:
                count = f.readinto(buffer[: min(end - begin, len(buffer))])
                if not count:
                    raise ZooError(f"{path}: the file ends inside tensor {name}; it is truncated")
                digest.update(buffer[:count])
                begin += count
    return digest.hexdigest()


def _bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes; no copy for a contiguous CPU tensor (a mapped one is read in place)."""
    return memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def write(path: Path, tensors: Mapping[str, torch.Tensor], meta: str) -> None:
    """Write tensors and the metadata JSON ``meta`` as a safetensors file, atomically."""
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={META_KEY: meta})


def state(model: torch.nn.Module | Mapping[str, torch.Tensor], dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The model's state dict (or these tensors) on the CPU, floating-point tensors as ``dtype``."""
    cast = getattr(torch, dtype)
    tensors = model.state_dict() if isinstance(model, torch.nn.Module) else model
    return {k: v.detach().to("cpu", dtype=cast if v.is_floating_point() else v.dtype).contiguous()
            for k, v in tensors.items()}


def save(model: torch.nn.Module | Mapping[str, torch.Tensor], path: Path, meta: WeightsMeta,
         dtype: str = "float32") -> None:
    """Write the model's weights (or these tensors) with ``meta``, completed by their layout
    fingerprint and content digest."""
    tensors = state(model, dtype)
    meta = dataclasses.replace(meta, fingerprint=fingerprint(tensors), tensors_sha256=content_digest(tensors))
    write(path, tensors, meta.json())


def data_digest(data: object) -> str | None:
    """sha256 of an in-memory dataset's tensors (None for a dataset read sample by sample)."""
    if not hasattr(data, "tensors"):
        return None
    digest = hashlib.sha256()
    for tensor in data.tensors():
        digest.update(_bytes(tensor))
    return digest.hexdigest()


def read_raw(path: Path, remedy: str) -> tuple[dict[str, torch.Tensor], str]:
    """A safetensors file's tensors (mapped) and zoo's metadata JSON ('{}' without), unverified;
    ZooError (ending with ``remedy``) if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(META_KEY, "{}")
            return {name: f.get_tensor(name) for name in f.keys()}, text
    except (SafetensorError, OSError, ValueError, RuntimeError, RecursionError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ZooError(f"{path}: not a readable safetensors file ({first}); it is truncated or corrupt: "
                       f"{remedy}") from None


def read_meta(path: Path) -> WeightsMeta:
    """The checked metadata of a zoo weights file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(META_KEY, "{}")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc})") from None
    return parse(text, Path(path))


def read(path: Path, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """The tensors (mapped from the file, not copied) and metadata of a zoo weights file, verified: its
    metadata, its layout fingerprint, its content digest and its sha256 (when given). Any problem
    raises ZooError naming the file.

    The two digests are computed side by side, each in one streaming pass over the file, and
    remembered for this version of it (path, size, mtime), so loading an unchanged file again skips
    them.
    """
    tensors, text = read_raw(path, "delete it, or build it again")
    meta = parse(text, Path(path))
    if not meta.tensors_sha256:
        raise ZooError(f"{path}: its metadata has no content digest (written before zoo 0.1.0); rebuild it")
    if fingerprint(tensors) != meta.fingerprint:
        raise ZooError(f"{path}: its tensors' names, shapes or dtypes do not match the fingerprint in its "
                       "metadata; the file was altered")
    digests = _digests(path, with_sha256=sha256 is not None)
    if sha256 is not None and digests["sha256"] != sha256:
        raise ZooError(
            f"{path}: sha256 {digests['sha256']} does not match the expected {sha256}; "
            "the file is corrupt or was changed. Delete it (a local build: run zoo build again)"
        )
    if digests["tensors_sha256"] != meta.tensors_sha256:
        raise ZooError(f"{path}: its tensor data does not match the sha256 in its metadata; the file is corrupt")
    return tensors, meta


def _digests(path: Path, with_sha256: bool) -> dict[str, str]:
    """The file's content digest (and sha256), from the cache or computed in parallel threads (hashlib
    releases the GIL on large buffers)."""
    known = known_digests(path)
    work = {"tensors_sha256": lambda: file_content_digest(path), "sha256": lambda: stream_sha256(path)}
    todo = [name for name in work if name not in known and (with_sha256 or name != "sha256")]
    if todo:
        with ThreadPoolExecutor(len(todo)) as pool:
            futures = {name: pool.submit(work[name]) for name in todo}
        computed = {name: future.result() for name, future in futures.items()}
        remember_digests(path, **computed)
        known.update(computed)
    return known
