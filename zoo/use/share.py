"""``zoo push``: a model as a Hugging Face Hub repo -- ``model.safetensors`` (zoo's file, metadata
intact), ``config.json`` (what it is), ``README.md`` (the model card under the YAML front matter the
Hub renders: library, license, tags, datasets, and the recorded metrics as ``model-index``
results) and ``recipe.yaml`` -- written to a folder or committed to a Hub repo. A file already
there with other content is replaced only with ``force``; an unchanged model is not pushed again."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from torch import nn

from zoo.errors import ZooError
from zoo.files import atomic_path, file_sha256
from zoo.recipe import catalog
from zoo.registry import Registry
from zoo.text import clip, did_you_mean
from zoo.use.card import card
from zoo.weights import hub
from zoo.weights.load import settings

TASKS = {"image": "image-classification", "tokens": "token-classification", "tensor": "tabular-regression"}


def layout(model: nn.Module, registry: Registry) -> dict[str, bytes | Path]:
    """The files of a model's repo: path in the repo -> bytes, or the file holding them."""
    meta = model.zoo_meta
    files = {hub.WEIGHTS: model.zoo_source.path, "config.json": _config(model).encode(),
             "README.md": (_front_matter(model, registry) + card(model, registry, verify=False)).encode()}
    if meta.recipe:  # imported weights have none
        files["recipe.yaml"] = yaml.safe_dump(meta.recipe, sort_keys=False).encode()
    return files


def _config(model: nn.Module) -> str:
    meta = model.zoo_meta
    versions = meta.versions
    return json.dumps({
        "library_name": "zoo", "name": meta.name, "model": meta.model,
        "input": asdict(meta.input) if meta.input else None, "classes": list(meta.classes or []),
        "metrics": meta.metrics, "zoo_version": versions.zoo if versions else None,
        "torch_version": versions.torch if versions else None,
        "plugins": {name: asdict(p) for name, p in sorted(versions.plugins.items())} if versions else {},
        "tensors_sha256": meta.tensors_sha256,
    }, indent=2, sort_keys=True) + "\n"


def _front_matter(model: nn.Module, registry: Registry) -> str:
    """The model card's YAML header, made with huggingface_hub's ModelCardData (model-index included)."""
    hf = hub.library()
    meta = model.zoo_meta
    entry = catalog.get(model.zoo_source.label, registry) if model.zoo_source.source == "catalog" else None
    dataset = settings(model).data.dataset.name if not meta.imported else None
    task = TASKS[meta.input.kind] if meta.input else None
    split = meta.evaluation.split if meta.evaluation else None
    results = [hf.EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset, dataset_split=split,
                             metric_type=key.removeprefix(f"{split}_"), metric_name=key, metric_value=round(value, 6))
               for key, value in sorted(meta.metrics.items()) if task and split and key.startswith(f"{split}_")]
    tags = dict.fromkeys(["zoo", "pytorch", *([task] if task else []), *(entry.tags if entry else ())])
    license_ = entry.license if entry else meta.imported.license if meta.imported else ""
    data = hf.ModelCardData(library_name="zoo", license=_license(license_), tags=list(tags),
                            datasets=[dataset] if dataset else None, model_name=meta.name, eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---\n\n"


def _license(text: str) -> str | None:
    """The Hub's license id from a catalog's license text ('MIT (weights); ...' -> 'mit'); the text
    itself is in the card."""
    first = text.split()[0].lower() if text.split() else ""
    return first if re.fullmatch(r"[a-z0-9][a-z0-9.-]*", first) else None


@dataclass(frozen=True)
class Pushed:
    """What a push did: where to, the files it changed (none: nothing was written) and, on the Hub,
    the commit the repo is at; in a model registry, the version that holds the model."""

    dest: str
    changed: tuple[str, ...]
    commit: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            if not self.changed:
                return f"{self.dest}: unchanged, version {self.version} holds these weights; nothing registered"
            return f"{self.dest}: registered version {self.version}"
        if self.commit is not None:
            if not self.changed:
                return f"{self.dest}: unchanged, nothing pushed"
            return f"{self.dest}: committed {', '.join(self.changed)} (commit {self.commit[:12]})"
        if not self.changed:
            return f"{self.dest}: unchanged, nothing written"
        return f"{self.dest}: wrote {', '.join(self.changed)}"


def push(model: nn.Module, dest: str, registry: Registry, *, force: bool = False) -> Pushed:
    """Write ``model``'s repo to ``dest`` (a folder, or hf-hub:ORG/REPO[@BRANCH]); ``str()`` of the
    result says what was done, in a line."""
    if not isinstance(dest, str) or not dest.strip():
        raise ZooError(f"push needs a destination: a folder or hf-hub:ORG/REPO, got {dest!r}")
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+._-]*):(?!\\)", dest)
    if scheme and not hub.is_hub(dest) and len(scheme.group(1)) > 1:  # mlflow:, hf_hub:, s3: ... (not C:\)
        pushed = registry.first("push_model", model=model, dest=dest, force=force)
        if pushed is not None:
            return pushed
        raise ZooError(f"'{clip(dest)}' names no destination zoo or its plugins know: hf-hub:ORG/REPO for the "
                       f"Hugging Face Hub{did_you_mean(scheme.group(1) + ':', [hub.PREFIX])}, or a folder "
                       f"(./{clip(dest)} to write one of that name)")
    files = layout(model, registry)
    if hub.is_hub(dest):
        ref = hub.parse(dest)
        commit, changed = hub.upload(files, ref, force=force, message=f"zoo push {model.zoo_meta.name} "
                                                                          f"({model.zoo_source.describe()})")
        return Pushed(str(ref), tuple(changed), commit)
    return _write_folder(files, Path(dest), force)


def _write_folder(files: dict[str, bytes | Path], folder: Path, force: bool) -> Pushed:
    if folder.exists() and not folder.is_dir():
        raise ZooError(f"{folder} is a file; give a folder (or hf-hub:ORG/REPO)")
    changed, replaced = [], []
    for name, data in files.items():
        target = folder / name
        if target.is_file() and _same(target, data):
            continue
        (replaced if target.exists() else changed).append(name)
    if replaced and not force:
        raise ZooError(f"{folder}: {', '.join(replaced)} already there with other content; --force replaces them")
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*changed, *replaced]:
        data = files[name]
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(data, tmp) if isinstance(data, Path) else tmp.write_bytes(data)
    return Pushed(str(folder), (*changed, *replaced))


def _same(target: Path, data: bytes | Path) -> bool:
    if isinstance(data, Path):
        return target.stat().st_size == data.stat().st_size and file_sha256(target) == file_sha256(data)
    return target.read_bytes() == data
