"""Weights another library made, as zoo files. A Hub repo in a bridged library's format (timm's:
``model.safetensors`` without zoo metadata, and ``config.json``) is converted once, by the plugin
that knows the format (hookspecs.convert_weights), into $ZOO_HOME/imported/ORG--REPO/COMMIT/; what
``zoo import`` fetches through a plugin (hookspecs.import_weights) is filed in the store. Either
way the tensors are the library's, byte for byte, and the record says where they came from."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

from zoo.errors import ZooError
from zoo.files import home, stream_sha256
from zoo.registry import Registry
from zoo.weights import hub, store
from zoo.weights.format import META_KEY, save
from zoo.weights.metadata import Imported, Versions, WeightsMeta
from zoo.weights.spec import InputSpec

MAX_CONFIG_BYTES = 1 << 20  # of a repo's config.json


def hub_weights(path: Path, ref: hub.Ref, commit: str, registry: Registry) -> Path:
    """The zoo file of a Hub repo's ``model.safetensors`` at ``path``: the file itself when it is zoo's,
    else its conversion by the plugin that knows the repo's config.json (made once per commit)."""
    if _is_zoo_file(path):
        return path
    target = home() / "imported" / ref.repo.replace("/", "--") / commit / hub.WEIGHTS
    if target.is_file():
        return target
    source = f"{hub.PREFIX}{ref.repo}@{commit}"
    config = _config(hub.Ref(ref.repo, commit), source)
    meta = registry.first("convert_weights", path=path, config=config, source=source)
    if meta is None:
        architecture = config.get("architecture") if isinstance(config, dict) else None
        raise ZooError(f"{source}: its {hub.WEIGHTS} has no zoo metadata, and no installed plugin knows its "
                       f"config.json{f' (architecture {architecture!r})' if architecture else ''}: a timm repo "
                       "needs the timm plugin (pip install -e '.[timm]' in a zoo checkout)")
    _write(path, target, meta, source)
    return target


def import_weights(name: str, url: str | None, registry: Registry) -> store.LocalBuild:
    """Fetch ``name`` through the plugin that knows it and file it in the store under its record's name."""
    with tempfile.TemporaryDirectory(dir=_mkdir(home() / "downloads")) as scratch:
        answer = registry.first("import_weights", name=name, url=url, folder=home() / "downloads")
        if answer is None:
            raise ZooError(f"no installed plugin imports '{name}': torchvision's weights are "
                           "torchvision:ARCHITECTURE.WEIGHTS (the torchvision extra), as 'zoo info "
                           "torchvision:resnet18' lists them")
        tensors, meta = answer
        path = Path(scratch) / "weights.safetensors"
        save(tensors, path, meta, dtype=_dtype(tensors))
        return store.record(meta.name, path, origin={"imported": name})


def _is_zoo_file(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as f:
            return META_KEY in (f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc})") from None


def _config(ref: hub.Ref, source: str) -> dict:
    try:
        path, _ = hub.download(ref, "config.json")
    except ZooError as exc:
        raise ZooError(f"{source}: its {hub.WEIGHTS} has no zoo metadata and its config.json cannot be read "
                       f"({exc})") from None
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ZooError(f"{source}: its config.json is {path.stat().st_size:,} bytes, more than {MAX_CONFIG_BYTES:,}")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        raise ZooError(f"{source}: its config.json is not JSON") from None


def _write(original: Path, target: Path, meta: WeightsMeta, source: str) -> None:
    if not isinstance(meta, WeightsMeta) or meta.imported is None:
        raise ZooError(f"{source}: the plugin converting it gave no zoo record with 'imported' facts")
    meta = dataclasses.replace(meta, imported=dataclasses.replace(meta.imported, source=source,
                                                                  sha256=stream_sha256(original)))
    with safe_open(str(original), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    save(tensors, target, meta, dtype=_dtype(tensors))


def _dtype(tensors: dict) -> str:
    """The floating-point dtype the library published the tensors in (kept, not converted)."""
    found = {str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()}
    return found.pop() if len(found) == 1 else "float32"


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record(name: str, model: dict, input: InputSpec, classes: list[str] | None, imported: Imported,
           metrics: dict[str, float] | None = None) -> WeightsMeta:
    """The zoo record of weights another library made, for a plugin's ``convert_weights`` or
    ``import_weights``: no recipe (they were not trained by zoo), the model node a bridge builds,
    the input spec with the library's preprocessing, the class names and where they came from."""
    import torch

    from zoo import __version__
    from zoo.recipe.schema import VERSION

    return WeightsMeta(name=name, model=model, recipe={}, recipe_version=VERSION, metrics=dict(metrics or {}),
                       versions=Versions(__version__, torch.__version__, {}, torch.backends.cpu.get_cpu_capability()),
                       input=input, classes=tuple(classes) if classes else None,
                       components={"model": {model["component"]: model["component"]}}, imported=imported)
