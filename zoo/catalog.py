"""The catalog of pretrained models and shipped recipes: zoo's registry.yaml and those plugins ship
(hookspecs.register_catalogs), merged, each entry naming its plugin. No torch here."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import yaml

from zoo.errors import ZooError
from zoo.registry import NAME

PACKAGE = Path(__file__).parent
RECIPES = PACKAGE / "recipes"  # the shipped recipe files, each listed in registry.yaml


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
    plugin: str = "zoo"  # whose catalog lists it

    @property
    def weights_path(self) -> Path | None:
        """The shipped weights file, when the entry names one."""
        return self.folder / self.file if self.file else None


@dataclass(frozen=True)
class Recipe:
    """A recipe a catalog ships: ``zoo build NAME`` finds it."""

    name: str
    path: Path
    summary: str = ""
    plugin: str = "zoo"


def registry_file() -> Path:
    """$ZOO_CATALOG, else the registry.yaml that ships inside the package."""
    return Path(os.environ.get("ZOO_CATALOG") or PACKAGE / "registry.yaml")


def sources() -> list[tuple[str, Path]]:
    """The catalog files: zoo's own, then each plugin's, with the plugin's name."""
    from zoo.registry import default_registry

    return [("zoo", registry_file()), *((plugin.name, path) for plugin, path in default_registry().catalogs())]


def _merged(index: int) -> dict[str, list]:
    """Models (index 0) or recipes (1) of every catalog, by name; a name in two catalogs is a clash."""
    found: dict[str, list] = {}
    for plugin, path in sources():
        for item in _read(path)[index].values():
            found.setdefault(item.name, []).append(replace(item, plugin=plugin))
    for name, group in found.items():
        if len(group) > 1:
            what = "pretrained model" if index == 0 else "recipe"
            warnings.warn(_clash(what, name, group), UserWarning, stacklevel=3)
    return found


def _clash(what: str, name: str, group: list) -> str:
    owners = " and ".join(f"'{item.plugin}'" for item in group)
    return f"{what} '{name}' is shipped by {owners}: pick one with " + " or ".join(
        f"'{item.plugin}:{name}'" for item in group)


def _unique(found: dict[str, list]) -> dict[str, object]:
    """Each item under its name, or under 'plugin:name' when two catalogs share the name."""
    return {name if len(group) == 1 else f"{item.plugin}:{name}": item for name, group in found.items() for item in group}


def entries() -> dict[str, Entry]:
    """Every pretrained model of every catalog (see :func:`_unique` for clashing names)."""
    return _unique(_merged(0))


def recipe_entries() -> dict[str, Recipe]:
    """Every shipped recipe of every catalog (see :func:`_unique` for clashing names)."""
    return _unique(_merged(1))


def recipes() -> dict[str, Path]:
    """The shipped recipes' files by name."""
    return {name: recipe.path for name, recipe in recipe_entries().items()}


def get(name: str) -> Entry | None:
    """The pretrained model ``name`` (or ``plugin:name``); None if no catalog has it. ZooError when two
    catalogs do and the name does not say which."""
    plugin, _, bare = name.rpartition(":")
    group = _merged(0).get(bare, [])
    chosen = [e for e in group if plugin in ("", e.plugin)]
    if len(chosen) > 1:
        raise ZooError(_clash("pretrained model", bare, group))
    return chosen[0] if chosen else None


@cache
def _read(path: Path) -> tuple[dict[str, Entry], dict[str, Recipe]]:
    try:
        # libyaml's safe loader when PyYAML was built with it: same safety, a few ms faster
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ZooError(f"cannot read the catalog {path}: {exc}") from exc
    found: dict[str, Entry] = {}
    for i, item in enumerate(data.get("models") or []):
        where = f"{path}: models[{i}]"
        try:
            entry = _entry(item, path.parent)
        except (KeyError, TypeError, ValueError) as exc:
            raise ZooError(f"{where}: malformed entry ({exc})") from exc
        if not NAME.match(entry.name):
            raise ZooError(f"{where}: name {entry.name!r} is not kebab-case")
        if entry.name in found:
            raise ZooError(f"{where}: duplicate name {entry.name!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
            raise ZooError(f"{where}: sha256 {entry.sha256!r} is not 64 hex digits (quote it in YAML)")
        if (entry.file is None) == (entry.url is None):
            raise ZooError(f"{where}: weights need exactly one of file or url")
        if entry.file is not None and not (path.parent / entry.file).resolve().is_relative_to(path.parent.resolve()):
            raise ZooError(f"{where}: weights file {entry.file!r} points outside {path.parent}")
        found[entry.name] = entry
    listed: dict[str, Recipe] = {}
    for i, item in enumerate(data.get("recipes") or []):
        try:
            name, recipe = item["name"], (path.parent / item["path"]).resolve()
        except (KeyError, TypeError) as exc:
            raise ZooError(f"{path}: recipes[{i}]: malformed entry ({exc})") from exc
        if not recipe.is_relative_to(path.parent.resolve()):
            raise ZooError(f"{path}: recipes[{i}]: {item['path']!r} points outside {path.parent}")
        listed[name] = Recipe(name, recipe, item.get("summary", ""))
    return found, listed


def _entry(item: dict, folder: Path) -> Entry:
    weights = item["weights"]
    return Entry(
        name=item["name"],
        summary=item.get("summary", ""),
        recipe=item["recipe"],
        sha256=str(weights["sha256"]).lower(),
        file=weights.get("file"),
        url=weights.get("url"),
        metrics=tuple(Metric(m["dataset"], m["split"], m["metric"], float(m["value"])) for m in item.get("metrics", [])),
        params=int(item.get("params", 0)),
        license=item.get("license", ""),
        tags=tuple(item.get("tags", [])),
        folder=folder,
    )


def shipped_recipes() -> list[str]:
    return sorted(recipes())


def recipe_path(arg: str) -> Path:
    """A recipe file path as given, or the shipped recipe of that name."""
    path = Path(arg)
    if path.is_file():
        return path
    if arg in recipes():
        return recipes()[arg]
    raise ZooError(
        f"no recipe file '{arg}', and no shipped recipe of that name (shipped: {', '.join(shipped_recipes())})"
    )
