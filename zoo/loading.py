"""``zoo.load``: a ready model from a weights file, a local build, or the catalog, fully verified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from zoo import catalog, store, weights
from zoo.assembly import Assembler, NoInit
from zoo.errors import ZooError
from zoo.files import SUFFIX, digest, download, home
from zoo.registry import NAME, default_registry
from zoo.schema import model_node
from zoo.text import did_you_mean

SOURCES = ("local", "catalog")


@dataclass(frozen=True)
class Located:
    """A weights file to load, where it came from, and the sha256 it must have (if known)."""

    path: Path
    source: str  # "path", "local" or "catalog"
    sha256: str | None = None


def load(name_or_path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         source: str | None = None, version: str | int | None = None) -> nn.Module:
    """A model in eval mode with its weights; ``model.zoo_meta`` holds the file's metadata.

    A name resolves to the latest local build (``zoo build``) first, then to the catalog;
    ``source="local"`` or ``"catalog"`` forces one. ``version`` (or ``NAME@VERSION``) picks one
    local build: its number, or 4+ hex digits of its sha256. A path loads that file alone.
    ``device`` and ``dtype`` (a floating-point dtype, applied to floating-point weights) say where
    the weights go.
    """
    located = locate(name_or_path, source, version)
    return load_file_verified(located, device, dtype)


def locate(name_or_path: str | Path, source: str | None = None, version: str | int | None = None) -> Located:
    """Resolve a name or path to a weights file, without reading it."""
    if source not in (None, *SOURCES):
        raise ZooError(f"source must be one of {', '.join(SOURCES)} (or None for local, then catalog), got {source!r}")
    text = str(name_or_path)
    if source is None and (isinstance(name_or_path, Path) or "/" in text or text.endswith(SUFFIX)):
        path = Path(text)
        if not path.is_file():
            raise ZooError(f"no weights file at {path}")
        return Located(path, "path")
    text, tagged = store.split(text)
    if tagged is not None and version is not None:
        raise ZooError(f"'{name_or_path}' names a version and version={version!r} another: give one")
    version = version if tagged is None else tagged
    if version is not None:
        if source == "catalog":
            raise ZooError(f"catalog models have no versions: load '{text}' without one, or use source='local'")
        build = store.get(text, version)
        return Located(build.path, "local", build.sha256)
    plugin, _, bare = text.rpartition(":")
    if not NAME.match(bare) or plugin and not NAME.match(plugin):
        raise ZooError(f"'{text}' is not a valid model name (kebab-case like mnist-mlp, or plugin:name; names "
                       "are never paths)")
    if source in (None, "local") and not plugin:
        local = store.latest(text)
        if local is not None:
            return Located(local.path, "local", local.sha256)
        if source == "local":
            raise ZooError(f"no local build of '{text}': run 'zoo build {text}' first, or use source='catalog'")
    entry = catalog.get(text)
    if entry is None:
        raise ZooError(_unknown(text, source))
    if entry.file is not None:
        return Located(entry.weights_path, "catalog", entry.sha256)
    target = home() / "downloads" / f"{entry.name}-{entry.sha256[:16]}{SUFFIX}"
    if not target.is_file():
        download([entry.url], target, verify=lambda data: _check_bytes(data, entry.sha256, entry.url))
    return Located(target, "catalog", entry.sha256)


def _unknown(name: str, source: str | None) -> str:
    known = sorted(set(catalog.entries()) | set(store.names())) if source is None else (
        sorted(store.names()) if source == "local" else sorted(catalog.entries()))
    hint = did_you_mean(name, known)
    where = {"local": "in the local store", "catalog": "in the catalog"}.get(source, "locally or in the catalog")
    return f"no model '{name}' {where}.{hint} Known: {', '.join(known) or 'none'}"


def _check_bytes(data: bytes, sha256: str, origin: str) -> None:
    actual = digest(data, "sha256")
    if actual != sha256:
        raise ZooError(f"{origin}: sha256 {actual} does not match the catalog's {sha256}")


def load_file_verified(located: Located, device: str | torch.device | None = None,
                       dtype: torch.dtype | None = None) -> nn.Module:
    """Read, check and load a weights file; any problem raises ZooError before the model is returned.

    The model is built without random initialisation (see :func:`build_model`) and takes the file's
    mapped tensors as its own, so loading costs about what reading the file does.
    """
    path = located.path
    device = _device(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ZooError(f"dtype must be a floating-point torch.dtype such as torch.bfloat16, got {dtype!r}")
    tensors, meta = weights.read(path, located.sha256)
    model = build_model(meta["model"], path, empty=True, pins=meta.get("components", {}),
                        saved_with=meta.get("versions", {}).get("plugins", {}))
    check_state(model, tensors, path)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.to(device=device, dtype=dtype)
    model.eval()
    model.zoo_meta = {**meta, "path": str(path), "source": located.source}
    if located.sha256:
        model.zoo_meta["sha256"] = located.sha256
    return model


def _device(device: str | torch.device | None) -> torch.device | None:
    try:
        return None if device is None else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ZooError(f"device {device!r} is not a torch device (cpu, cuda, cuda:N, mps): {exc}") from None


def build_model(node: object, origin: Path, *, empty: bool = False, pins: dict | None = None,
                saved_with: dict | None = None) -> nn.Module:
    """The model a weights file describes, built through the registry with random weights; with
    ``empty``, for weights that follow, without random initialisation: on the meta device, or on the
    CPU with uninitialised parameters when the model computes buffers that no weights file holds.
    ``pins`` (kind -> name -> plugin:name, as the file records them) make each name mean the
    component it meant when the file was saved, whatever plugins were installed since."""
    def build() -> nn.Module:
        assembler = Assembler(default_registry(), pins=pins or {}, saved_with=saved_with or {})
        return assembler.model(model_node(node, origin))

    if not empty:
        return build()
    with torch.device("meta"), NoInit():
        model = build()
    if {name for name, _ in model.named_buffers()} <= model.state_dict().keys():
        return model
    with NoInit():
        return build()


def check_state(model: nn.Module, tensors: dict[str, torch.Tensor], origin: Path) -> None:
    """Raise ZooError naming every missing or unexpected key and every shape or dtype mismatch (a file
    saved in another floating-point dtype fits: the model takes the file's, or ``dtype=``)."""
    expected = model.state_dict()
    problems = [f"missing key {k} {tuple(v.shape)}" for k, v in expected.items() if k not in tensors]
    problems += [f"unexpected key {k} {tuple(v.shape)}" for k, v in tensors.items() if k not in expected]
    for key in expected.keys() & tensors.keys():
        want, got = expected[key], tensors[key]
        if want.shape != got.shape:
            problems.append(f"{key}: the model has shape {tuple(want.shape)}, the file {tuple(got.shape)}")
        elif want.dtype != got.dtype and not (want.is_floating_point() and got.is_floating_point()):
            problems.append(f"{key}: the model has dtype {want.dtype}, the file {got.dtype}")
    if problems:
        raise ZooError(f"{origin}: weights do not fit the model: " + "; ".join(sorted(problems)))
