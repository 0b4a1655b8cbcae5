"""Another library's models as model components, as a bridge plugin registers them (zoo's timm and
torchvision plugins do): the library's architectures and each one's parameters come from a cache
keyed by the library's version, made once by importing the library, in $ZOO_HOME/cache, so listing
them imports neither the library nor torch. Their names are the library's own (``vit_small_patch16_224``)."""

from __future__ import annotations

import fnmatch
import functools
import importlib
import inspect
import json
import math
import os
import re
import sys
import typing
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version as installed_version
from pathlib import Path

from filelock import FileLock

from zoo.errors import ZooError
from zoo.files import atomic_write_bytes, home
from zoo.typed import simple

FORMAT = 2  # of the cache files; another format is made afresh
NAME = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")  # a library's names: snake_case as timm and torchvision write them
TYPES: dict[str, object] = {"int": int, "float": float, "bool": bool, "str": str,
                            "ints": tuple[int, ...], "floats": tuple[float, ...]}
SKIP = frozenset({"self", "device", "dtype", "pretrained", "weights", "progress"})


@dataclass(frozen=True)
class Architecture:
    """One architecture a library lists: its name, a one-line summary, the parameters a recipe may set
    (name, a word of TYPES or "" when any JSON value goes, default), the input it was designed for
    (channels, height, width) and its pretrained weights (tag -> where they are)."""

    name: str
    summary: str
    params: tuple[tuple[str, str, object], ...] = ()
    input: tuple[int, ...] = ()
    pretrained: dict[str, str] | None = None


def is_library_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 100 and NAME.fullmatch(name) is not None


def cache_folder() -> Path:
    """Where the lists are kept: $ZOO_CACHE (one folder several zoo homes may share), else $ZOO_HOME/cache."""
    return Path(os.environ.get("ZOO_CACHE") or home() / "cache")


def library_version(library: str) -> str | None:
    """The installed version of distribution ``library``; None when it is not installed."""
    try:
        return installed_version(library)
    except PackageNotFoundError:
        return None


def architectures(library: str, describe: str) -> list[Architecture]:
    """The architectures of ``library`` as the function ``describe`` (``"module:attribute"``, imported
    only when there is no cache: it imports the library) lists them, cached per library version; none
    when the library is not installed."""
    found = library_version(library)
    if found is None:
        return []
    path = cache_folder() / f"{library}-{found}.json"
    cached = _read(path, *_stamp(path))
    if cached is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):  # processes starting together make it once
        cached = _read(path, *_stamp(path))
        if cached is not None:
            return cached
        print(f"zoo: reading the architectures of {library} {found} once (cached in {path})", file=sys.stderr)
        listed = [a for a in _imported(describe)() if is_library_name(a.name)]
        data = {"format": FORMAT, "library": library, "version": found,
                "architectures": [asdict(a) for a in listed]}
        atomic_write_bytes(path, json.dumps(data, separators=(",", ":")).encode())
    return listed


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return 0, 0
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _read(path: Path, mtime_ns: int, size: int) -> list[Architecture] | None:
    """A cache file's architectures, read once per version of the file; None when it is missing or not
    one this zoo wrote (it is then made afresh)."""
    if not size:
        return None
    try:
        data = json.loads(path.read_bytes())
        assert data["format"] == FORMAT and data["library"] in path.name
        return [Architecture(a["name"], str(a["summary"]), tuple(map(tuple, a["params"])), tuple(a["input"]),
                             a["pretrained"]) for a in data["architectures"] if is_library_name(a["name"])]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return None


def params_of(factory: Callable, given: dict[str, object] | None = None, skip: Iterable[str] = ()) -> tuple:
    """The parameters of ``factory`` (a class: its ``__init__``'s) a recipe can set: those with a
    default (or a value in ``given``, which overrides the default) that JSON can write, less those
    typed as something JSON cannot be (a module class, a function); each as (name, type word,
    default) for :class:`Architecture`."""
    given = given or {}
    found = []
    try:
        parameters = inspect.signature(factory).parameters.values()
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:
        return ()
    for p in parameters:
        if p.name in SKIP or p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = given.get(p.name, p.default)
        if default is p.empty or not _jsonable(default):
            continue
        word = _word(hints.get(p.name), default)
        if not word and default is None and p.name in hints:  # an optional module or function: not JSON's
            continue
        found.append((p.name, word, list(default) if isinstance(default, tuple) else default))
    return tuple(found)


def _jsonable(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def _word(hint: object, default: object) -> str:
    """The TYPES word of a parameter ("" for any JSON value), with "?" when it may be None."""
    found, optional = simple(hint)
    if hint is None and default is not None:
        found = type(default) if not isinstance(default, (list, tuple)) else simple(tuple[type(default[0]), ...]
                                                                                     if default else None)[0]
    word = next((w for w, t in TYPES.items() if t == found), "")
    return f"{word}?" if word and (optional or default is None) else word


class LibraryModel:
    """The factory of one architecture of another library: ``build(name, **params)`` makes it, a
    ``"module:attribute"`` imported on first use; its signature is the architecture's parameters."""

    def __init__(self, library: str, architecture: Architecture, build: str):
        self.library = library
        self.architecture = architecture
        self.build = build
        self.__doc__ = architecture.summary

    @property
    def name(self) -> str:
        return self.architecture.name

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        return inspect.Signature([
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_tuples(default),
                              annotation=self.__annotations__.get(name, inspect.Parameter.empty))
            for name, _, default in self.architecture.params])

    @functools.cached_property
    def __annotations__(self) -> dict[str, object]:
        hints = {}
        for name, word, _ in self.architecture.params:
            base = TYPES.get(word.rstrip("?"))
            if base is not None:
                hints[name] = base | None if word.endswith("?") else base
        return hints

    def __call__(self, **params: object) -> object:
        try:
            return _imported(self.build)(self.name, **params)
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:  # the library refused the values
            raise ZooError(f"{self.library} could not build '{self.name}' from {params}: "
                           f"{type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"<{self.library} architecture {self.name}>"


def _imported(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def pretrained_tags(registry: object, pattern: str | None = None) -> dict[str, tuple[str, str]]:
    """The pretrained weights the bridged libraries list, as ``plugin:tag`` -> (where they are: an
    ``hf-hub:`` name or a ``zoo import`` name, the library), matching the fnmatch ``pattern``."""
    found = {}
    for component in registry.components("model"):
        if component.library:
            for tag, source in (component.factory.architecture.pretrained or {}).items():
                key = f"{component.plugin.name}:{tag}"
                if pattern is None or fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(tag, pattern):
                    found[key] = (source, component.library)
    return found


def pretrained_source(registry: object, name: str) -> str | None:
    """Where the weights a library's tag names are (``timm:resnet18.a1_in1k`` -> ``hf-hub:timm/...``),
    or None when ``name`` is no such tag; a bare tag works when one library has it."""
    if "." not in name or "/" in name:
        return None
    plugin, _, tag = name.rpartition(":")
    matches = [source for key, (source, _) in pretrained_tags(registry, f"*:{tag}").items()
               if not plugin or key.startswith(f"{plugin}:")]
    return matches[0] if len(matches) == 1 else None
