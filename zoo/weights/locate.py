"""From a name to a weights file, without reading it. One rule, stated once (docs/recipes.md, "Which
weights a name means"):

- ``NAME`` (or ``plugin:NAME``) is the published model of that name in the catalog: zoo's own entry,
  or a plugin's; a local build never changes what a bare name means;
- ``NAME@latest``, ``NAME@3`` or ``NAME@1a2b3c`` is a local build in the store;
- ``hf-hub:ORG/REPO[@REVISION]`` is the ``model.safetensors`` of a repo on the Hugging Face Hub
  (:mod:`zoo.weights.hub`), downloaded into the Hugging Face cache; a repo in another library's
  format (timm's) is converted into a zoo file once, by its bridge (:mod:`zoo.weights.imported`);
- ``plugin:TAG`` is the pretrained weights a bridged library lists (``timm:resnet18.a1_in1k``: the
  ``hf-hub:`` repo timm names);
- a path (it has a ``/`` or ends in ``.safetensors``) is that file; a folder is the weights it holds:
  ``model.safetensors`` (a repo ``zoo push`` wrote, as a Hugging Face user loads a local repo) or
  ``weights.safetensors`` (a run folder).

Nothing here reaches the network except a catalog entry with a URL, which the user installed (it
downloads once into $ZOO_HOME/downloads, size-capped and sha256-checked, or into the Hugging Face
cache for an ``hf-hub:`` URL), and an ``hf-hub:`` name the user gave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import SUFFIX, download, file_sha256, home, stream_sha256
from zoo.names import check
from zoo.recipe import catalog
from zoo.registry import Registry
from zoo.registry.library import pretrained_source
from zoo.text import clip, did_you_mean
from zoo.weights import hub, store


FOLDER_WEIGHTS = (hub.WEIGHTS, f"weights{SUFFIX}")  # in a folder: a pushed repo's, a run folder's


@dataclass(frozen=True)
class Located:
    """A weights file to load, where it came from, and the sha256 it must have (when known)."""

    path: Path
    source: str  # "catalog", "local", "hub" or "file"
    label: str  # the name that reached it: mnist-mlp, mnist-mlp@3, hf-hub:org/repo@<commit>, or the path
    sha256: str | None = None

    def describe(self) -> str:
        """One line saying which weights these are: '<label> (zoo's catalog, sha256 1a2b3c4d)'."""
        sha = (self.sha256 or file_sha256(self.path))[:12]
        where = {"catalog": "published in the catalog", "local": "local build", "hub": "Hugging Face Hub",
                 "file": "file"}[self.source]
        return f"{self.label} ({where}, sha256 {sha})"


def is_path(text: str | Path) -> bool:
    """Whether a model argument names a file rather than a model."""
    return isinstance(text, Path) or not hub.is_hub(text) and ("/" in str(text) or str(text).endswith(SUFFIX))


def locate(name_or_path: str | Path, registry: Registry, version: str | int | None = None) -> Located:
    """Resolve a name or path to a weights file, without reading it (see the module's rule)."""
    text = str(name_or_path)
    if hub.is_hub(text):
        if version is not None:
            raise ZooError(f"version= is for local builds; pin a Hub revision as {text}@REVISION")
        ref = hub.parse(text)
        path, commit = hub.download(ref)
        from zoo.weights.imported import hub_weights  # reads the file, with torch

        return Located(hub_weights(path, ref, commit, registry), "hub", f"{hub.PREFIX}{ref.repo}@{commit}")
    typo = re.match(r"([A-Za-z][A-Za-z0-9_.+-]*):", text)
    if typo and "/" in text and did_you_mean(typo.group(1), [hub.PREFIX[:-1]]):  # hf_hub:org/repo
        raise ZooError(f"'{clip(text)}' is no name zoo knows:{did_you_mean(typo.group(1), [hub.PREFIX[:-1]])} "
                       f"(hf-hub:ORG/REPO names a Hub repo; ./{clip(text)} a file)")
    if is_path(name_or_path):
        path = Path(text)
        if version is not None:
            raise ZooError(f"version= is for local builds of a name, not a file ({path})")
        if path.is_dir():
            held = [path / name for name in FOLDER_WEIGHTS if (path / name).is_file()]
            if not held:
                raise ZooError(f"{path} is a folder with no {' or '.join(FOLDER_WEIGHTS)}: give a weights file or a "
                               "folder zoo push or zoo build wrote")
            return Located(held[0], "file", str(held[0]))
        if not path.is_file():
            raise ZooError(f"no weights file at {path}")
        return Located(path, "file", text)
    source = pretrained_source(registry, text)  # a library's pretrained tag: timm:resnet18.a1_in1k
    if source is not None and version is None:
        if hub.is_hub(source):
            return locate(source, registry)
        raise ZooError(f"'{text}' is {source.partition(':')[0]}'s: bring it in once with 'zoo import {source}', "
                       "then load the store's name it prints")
    name, tagged = store.split(text)
    if tagged is not None and version is not None:
        raise ZooError(f"'{text}' names a version and version={version!r} another: give one")
    version = tagged if version is None else version
    plugin, _, bare = name.rpartition(":")
    if version is not None:
        if plugin:
            raise ZooError(f"'{text}': local builds are named NAME@VERSION, without a plugin")
        check(name, "model name", store.names())
        build = store.get(name, str(version))
        return Located(build.path, "local", build.label, build.sha256)
    check(bare, "model name", [*catalog.entries(registry), *store.names()])
    if plugin:
        check(plugin, "plugin name")
    entry = catalog.get(name, registry)
    if entry is None:
        raise ZooError(_unknown(name, registry))
    if entry.file is not None:
        return Located(entry.weights_path, "catalog", entry.qualified_name, entry.sha256)
    if hub.is_hub(entry.url):  # a catalog entry may point at a Hub repo (pin a commit) instead of shipping bytes
        path, _ = hub.download(hub.parse(entry.url))
        try:
            _check_sha256(path, entry.sha256)
        except ZooError as exc:
            raise ZooError(f"{entry.url}: {exc}") from None
        return Located(path, "catalog", entry.qualified_name, entry.sha256)
    target = home() / "downloads" / f"{entry.name}-{entry.sha256[:16]}{SUFFIX}"
    if not target.is_file():
        download([entry.url], target, verify=lambda path: _check_sha256(path, entry.sha256))
    return Located(target, "catalog", entry.qualified_name, entry.sha256)


def _unknown(name: str, registry: Registry) -> str:
    published = sorted(catalog.entries(registry))
    if name in store.names():
        return (f"'{name}' is not published in any catalog; your local builds of it are '{name}@latest', "
                f"'{name}@1' ... (zoo builds {name})")
    hint = did_you_mean(name, [*published, *(f"{n}@latest" for n in store.names())])
    return f"no model '{name}' in the catalog.{hint} Published: {', '.join(published) or 'none'}; local builds: NAME@latest"


def _check_sha256(path: Path, sha256: str) -> None:
    actual = stream_sha256(path)
    if actual != sha256:
        raise ZooError(f"sha256 {actual} does not match the catalog's {sha256}")
