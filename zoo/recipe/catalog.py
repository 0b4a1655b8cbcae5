"""The catalog of pretrained models and shipped recipes: zoo's registry.yaml and those plugins ship
(hookspecs.register_catalogs), merged, each entry naming its plugin. No torch here.

The components' rule holds here too: a bare name means zoo's own entry; a plugin's entry of the
same name is reached as ``plugin:name``; two plugins sharing a name (and not zoo) need the prefix.
A catalog file is checked whole when read: any malformed entry is an error naming the file and it.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from zoo.errors import ZooError
from zoo.names import is_name
from zoo.registry.plugins import PluginWarning

if TYPE_CHECKING:
    from zoo.registry import Registry

PACKAGE = Path(__file__).parent.parent  # the zoo package: registry.yaml, pretrained/, recipes/
BUILTIN = "zoo"  # the catalog a bare name means


@dataclass(frozen=True)
class Metric:
    dataset: str
    split: str
    metric: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.value:.4f} ({self.dataset} {self.split})"


@dataclass(frozen=True)
class Entry:
    """A named pretrained model: its recipe, its weights (a file in the package or a URL) and scores."""

    name: str
    summary: str
    recipe: str
    sha256: str
    file: str | None = None
    url: str | None = None
    metrics: tuple[Metric, ...] = ()
    params: int = 0
    license: str = ""
    tags: tuple[str, ...] = field(default=())
    folder: Path = PACKAGE
    plugin: str = BUILTIN  # whose catalog lists it

    @property
    def weights_path(self) -> Path | None:
        """The shipped weights file, when the entry names one."""
        return self.folder / self.file if self.file else None

    @property
    def qualified_name(self) -> str:
        return self.name if self.plugin == BUILTIN else f"{self.plugin}:{self.name}"


@dataclass(frozen=True)
class Recipe:
    """A recipe a catalog ships: ``zoo build NAME`` finds it."""

    name: str
    path: Path
    summary: str = ""
    plugin: str = BUILTIN


def registry_file() -> Path:
    """$ZOO_CATALOG, else the registry.yaml that ships inside the package."""
    return Path(os.environ.get("ZOO_CATALOG") or PACKAGE / "registry.yaml")


def sources(registry: Registry) -> list[tuple[str, Path]]:
    """The catalog files: zoo's own, then each plugin's, with the plugin's name."""
    return [(BUILTIN, registry_file()), *((plugin.name, path) for plugin, path in registry.catalogs())]


def _merged(registry: Registry, index: int) -> dict[str, list]:
    """Models (index 0) or recipes (1) of every catalog, by bare name, zoo's first."""
    found: dict[str, list] = {}
    for plugin, path in sources(registry):
        for item in _read(path)[index].values():
            found.setdefault(item.name, []).append(replace(item, plugin=plugin))
    return found


def _unique(found: dict[str, list], what: str) -> dict[str, object]:
    """Each item under the name that reaches it: the bare name for zoo's (or the only one), 'plugin:name'
    for the others. A clash between plugins is warned about."""
    result = {}
    for name, group in found.items():
        bare = _bare_owner(group)
        if bare is None and len(group) > 1:
            warnings.warn(_clash(what, name, group), PluginWarning, stacklevel=3)
        for item in group:
            result[name if item is bare else f"{item.plugin}:{name}"] = item
    return result


def _bare_owner(group: list) -> object | None:
    """The item a bare name means: zoo's, or the only one."""
    return next((i for i in group if i.plugin == BUILTIN), None) or (group[0] if len(group) == 1 else None)


def _clash(what: str, name: str, group: list) -> str:
    owners = " and ".join(f"'{item.plugin}'" for item in group)
    return f"{what} '{name}' is shipped by {owners}: pick one with " + " or ".join(
        f"'{item.plugin}:{name}'" for item in group)


def entries(registry: Registry) -> dict[str, Entry]:
    """Every pretrained model of every catalog, under the name that reaches it."""
    return _unique(_merged(registry, 0), "pretrained model")


def recipe_entries(registry: Registry) -> dict[str, Recipe]:
    """Every shipped recipe of every catalog, under the name that reaches it."""
    return _unique(_merged(registry, 1), "recipe")


def get(name: str, registry: Registry) -> Entry | None:
    """The pretrained model ``name`` (zoo's own) or ``plugin:name``; None if no catalog has it.
    ZooError when only plugins have it, several of them, and the name does not say which."""
    return _pick(name, _merged(registry, 0), "pretrained model")


def recipe(name: str, registry: Registry) -> Recipe | None:
    """The shipped recipe ``name`` or ``plugin:name`` (the same rule as :func:`get`)."""
    return _pick(name, _merged(registry, 1), "recipe")


def _pick(name: str, found: dict[str, list], what: str) -> object | None:
    plugin, _, bare = name.rpartition(":")
    group = found.get(bare, [])
    if plugin:
        return next((item for item in group if item.plugin == plugin), None)
    if group and _bare_owner(group) is None:
        raise ZooError(_clash(what, bare, group))
    return _bare_owner(group) if group else None


def recipe_path(arg: str, registry: Registry) -> Path:
    """A recipe file path as given, or the shipped recipe of that name."""
    path = Path(arg)
    if path.is_file():
        return path
    shipped = recipe(arg, registry) if re.fullmatch(r"([a-z0-9-]+:)?[a-z0-9-]+", arg) else None
    if shipped is not None:
        return shipped.path
    raise ZooError(f"no recipe file '{arg}', and no shipped recipe of that name (shipped: "
                   f"{', '.join(sorted(recipe_entries(registry)))})")


@functools.cache
def _read(path: Path) -> tuple[dict[str, Entry], dict[str, Recipe]]:
    try:
        # libyaml's safe loader when PyYAML was built with it: same safety, a few ms faster
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ZooError(f"cannot read the catalog {path}: {exc}") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ZooError(f"catalog {path}: the top level is a {type(data).__name__}; a catalog is a mapping with "
                       "'models' and 'recipes' lists")
    for key in ("models", "recipes"):
        if not isinstance(data.get(key) or [], list):
            raise ZooError(f"catalog {path}: '{key}' is a {type(data[key]).__name__}, not a list")
    found: dict[str, Entry] = {}
    for i, item in enumerate(data.get("models") or []):
        entry = _checked(f"{path}: models[{i}]", lambda where: _entry(item, path.parent, where))
        if entry.name in found:
            raise ZooError(f"{path}: models[{i}]: duplicate name {entry.name!r}")
        found[entry.name] = entry
    listed: dict[str, Recipe] = {}
    for i, item in enumerate(data.get("recipes") or []):
        shipped = _checked(f"{path}: recipes[{i}]", lambda where: _recipe(item, path.parent, where))
        listed[shipped.name] = shipped
    return found, listed


def _checked(where: str, read: Callable[[str], object]) -> object:
    try:
        return read(where)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ZooError(f"{where}: malformed entry ({type(exc).__name__}: {exc})") from None


def _text(item: dict, key: str, where: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if not isinstance(value, str):
        raise ZooError(f"{where}: '{key}' must be a string, got {value!r}"[:300])
    return value


def _entry(item: object, folder: Path, where: str) -> Entry:
    if not isinstance(item, dict):
        raise ZooError(f"{where}: an entry is a mapping, got {item!r}"[:300])
    name = _text(item, "name", where)
    if not is_name(name):
        raise ZooError(f"{where}: name {name!r} is not kebab-case (at most 100 characters)"[:300])
    weights = item.get("weights")
    if not isinstance(weights, dict):
        raise ZooError(f"{where}: 'weights' must be a mapping with sha256 and file or url")
    sha256 = str(weights.get("sha256", "")).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ZooError(f"{where}: sha256 {weights.get('sha256')!r} is not 64 hex digits (quote it in YAML)"[:300])
    file, url = weights.get("file"), weights.get("url")
    if (file is None) == (url is None):
        raise ZooError(f"{where}: weights need exactly one of file or url")
    if file is not None and not (isinstance(file, str) and (folder / file).resolve().is_relative_to(folder.resolve())):
        raise ZooError(f"{where}: weights file {file!r} points outside {folder}"[:300])
    if url is not None and not (isinstance(url, str) and (
            urllib.parse.urlsplit(url).scheme in ("http", "https") and urllib.parse.urlsplit(url).netloc
            or url.startswith("hf-hub:"))):
        raise ZooError(f"{where}: weights url {url!r} is not an http(s) URL or hf-hub:ORG/REPO@REVISION"[:300])
    metrics = item.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise ZooError(f"{where}: 'metrics' must be a list of mappings (dataset, split, metric, value)")
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ZooError(f"{where}: 'tags' must be a list of strings")
    params = item.get("params", 0)
    if not isinstance(params, int) or isinstance(params, bool) or params < 0:
        raise ZooError(f"{where}: 'params' must be a non-negative integer, got {params!r}"[:300])
    return Entry(
        name=name,
        summary=_text(item, "summary", where, ""),
        recipe=_text(item, "recipe", where),
        sha256=sha256,
        file=file,
        url=url,
        metrics=tuple(Metric(_text(m, "dataset", where), _text(m, "split", where), _text(m, "metric", where),
                             float(m["value"])) for m in metrics),
        params=params,
        license=_text(item, "license", where, ""),
        tags=tuple(tags),
        folder=folder,
    )


def _recipe(item: object, folder: Path, where: str) -> Recipe:
    if not isinstance(item, dict):
        raise ZooError(f"{where}: an entry is a mapping, got {item!r}"[:300])
    name, relative = _text(item, "name", where), _text(item, "path", where)
    if not is_name(name):
        raise ZooError(f"{where}: name {name!r} is not kebab-case (at most 100 characters)"[:300])
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ZooError(f"{where}: {relative!r} points outside {folder}")
    return Recipe(name, path, _text(item, "summary", where, ""))
