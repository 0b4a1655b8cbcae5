"""How a recipe section is declared and read: a frozen dataclass whose fields are its keys, each
field's type hint saying what the key takes (checked by zoo.typed, the one reader, bounds in
``Annotated``), and :func:`key` its default and one-line doc. A field typed with :class:`Node`
takes component nodes; a field typed with another section's dataclass is a nested section."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Annotated

from zoo.recipe.migrations import renamed
from zoo.recipe.nodes import WORDS, Node, is_node, node
from zoo.recipe.parse import KeyPath, Recipe, RecipeError, format_path
from zoo.text import did_you_mean
from zoo.typed import Is, Mismatch, convert, hints_of, members, takes

Component = Annotated[Node, Is(is_node, WORDS)]  # a component node


def components(kind: str) -> Is:
    """The rule of a list of component nodes of ``kind``."""
    return Is(lambda v: isinstance(v, list) and all(map(is_node, v)), f"a list of {kind} components")


@dataclass(frozen=True)
class SameAs:
    """A default that is the value of another key of the same section."""

    key: str


Reader = Callable[[object, KeyPath, Recipe, list], object]


def key(default: object = MISSING, doc: str = "", *, convert: Callable[[object], object] | None = None,
        read: Reader | None = None) -> object:
    """Declare a recipe key (a dataclass field whose type hint says what it takes): its default
    (none: required) and a one-line doc. ``convert`` turns the checked value into the settings' type;
    ``read(value, path, recipe, problems)`` does, for a value whose parts have locations of their own
    (a search space), adding each problem it finds."""
    return field(default=default, metadata={"doc": doc, "convert": convert, "read": read})


@dataclass(frozen=True)
class Key:
    """One key of a section, as its field declares it."""

    name: str
    hint: object
    default: object
    doc: str
    convert: Callable[[object], object] | None
    read: Reader | None

    @property
    def section(self) -> type | None:
        """The dataclass of a nested section this key is (``data``, ``train``, ``search``), or None."""
        return next((m for m in members(self.hint) if dataclasses.is_dataclass(m) and hasattr(m, "SECTION")), None)

    @property
    def nodes(self) -> bool:
        """Whether its value is (or holds) component nodes."""
        return takes(self.hint, Node)


@functools.cache
def keys(cls: type) -> dict[str, Key]:
    """The keys a section's dataclass declares, in order."""
    hints = hints_of(cls)
    return {f.name: Key(f.name, hints[f.name], f.default, f.metadata.get("doc", ""), f.metadata.get("convert"),
                        f.metadata.get("read"))
            for f in dataclasses.fields(cls) if "doc" in f.metadata}


def read_section(recipe: Recipe, cls: type, prefix: KeyPath, problems: list[RecipeError],
                 nested: dict[str, type] | None = None) -> dict:
    """The typed values of the section ``cls`` at ``prefix``; each problem found is added to
    ``problems`` and its key skipped. ``nested`` gives the dataclass of a nested section by key, when
    another than its field's (a section extended by a plugin or a test)."""
    given = recipe.get(prefix) if prefix else recipe.data
    declared = keys(cls)
    for name in given:
        if name not in declared:
            where = format_path(prefix) or "A recipe"
            moved = renamed((*prefix, name))
            hint = (f" Schema version {moved.version} renamed it {moved.new}." if moved else did_you_mean(name, declared))
            problems.append(recipe.error((*prefix, name), f"unknown key '{name}'.{hint} "
                                                          f"{where} takes: {', '.join(declared)}"))
    result: dict[str, object] = {}
    for name, declared_key in declared.items():
        path = (*prefix, name)
        if name in given:
            value = _value(declared_key, given[name], path, recipe, problems, (nested or {}).get(name))
            if value is not _SKIP:
                result[name] = value
        elif declared_key.default is MISSING:
            problems.append(recipe.error(prefix, f"missing required key '{name}'"))
        else:
            default = declared_key.default
            result[name] = node(default, path, recipe) if declared_key.nodes and isinstance(default, str) else default
    for name, value in result.items():
        default = declared[name].default
        if isinstance(value, SameAs) or value is None and isinstance(default, SameAs):
            result[name] = result.get((value if isinstance(value, SameAs) else default).key)
    return result


_SKIP = object()


def _value(declared: Key, value: object, path: KeyPath, recipe: Recipe, problems: list[RecipeError],
           section: type | None = None) -> object:
    """One given key's typed value, or _SKIP after adding its problems."""
    section = section or declared.section
    if section is not None and value is not None:
        if not isinstance(value, dict):
            problems.append(recipe.error(path, f"expects a mapping, got {value!r}"))
            return _SKIP
        before = len(problems)
        values = read_section(recipe, section, path, problems)
        return section(**values) if len(problems) == before else _SKIP
    try:
        checked = convert(value, declared.hint, got=repr)
    except Mismatch as exc:
        problems.append(recipe.error(path, exc.problem))
        return _SKIP
    if declared.read is not None:
        before = len(problems)
        read = declared.read(checked, path, recipe, problems)
        return read if len(problems) == before else _SKIP
    if declared.nodes and isinstance(checked, (list, tuple)):
        return tuple(node(v, (*path, i), recipe) for i, v in enumerate(checked))
    if declared.nodes and checked is not None:
        return node(checked, path, recipe)
    return checked if declared.convert is None else declared.convert(checked)


def key_paths(root: type) -> set[KeyPath]:
    """Every key path the section ``root`` and its nested sections declare (what ``--set`` may add)."""
    paths: set[KeyPath] = set()
    for name, declared in keys(root).items():
        paths.add((name,))
        if declared.section is not None:
            paths |= {(name, *rest) for rest in key_paths(declared.section)}
    return paths
