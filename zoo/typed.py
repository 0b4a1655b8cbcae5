"""Typed records read from untrusted plain data (JSON a file or a request carries): a dataclass built
field by field, each value checked against the field's type hint, nested dataclasses, tuples and
mappings converted, and any problem one ZooError naming where it is. A dataclass checks its own
bounds in ``__post_init__`` (raising ValueError), which :func:`read` locates the same way."""

from __future__ import annotations

import dataclasses
import types
import typing

from zoo.errors import ZooError
from zoo.text import clip


def read(cls: type, data: object, where: str) -> object:
    """An instance of dataclass ``cls`` from the mapping ``data``; keys it does not declare are left out."""
    if not isinstance(data, dict):
        raise ZooError(f"{where}: expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ZooError(f"{where}: '{f.name}' is missing")
            continue
        values[f.name] = convert(data[f.name], hints[f.name], f"{where}.{f.name}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ZooError(f"{where}: {exc}") from None


def convert(value: object, hint: object, where: str) -> object:
    """``value`` as type ``hint`` (lists become tuples where the hint says tuple); ZooError if it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return value
    if dataclasses.is_dataclass(hint):
        return read(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, where)
            except ZooError:
                continue
        raise ZooError(f"{where}: expects {describe(hint)}, got {_kind(value)}")
    if origin is typing.Literal:
        if value in args and isinstance(value, type(args[0])):
            return value
        raise ZooError(f"{where}: expects one of {', '.join(map(repr, args))}, got {_kind(value)}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ZooError(f"{where}: expects a list, got {_kind(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ZooError(f"{where}: expects {len(args)} items, got {len(value)}")
            items = [convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            items = [convert(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ZooError(f"{where}: expects a mapping, got {_kind(value)}")
        key_type, value_type = args or (str, object)
        return {convert(k, key_type, where): convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and type(value) is hint or hint in (dict, list) and isinstance(value, hint):
        return value
    raise ZooError(f"{where}: expects {describe(hint)}, got {_kind(value)}")


def describe(hint: object) -> str:
    """A type hint in words: 'int', 'a list of int', 'str or None'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else describe(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return f"a mapping ({hint.__name__})"
    return getattr(hint, "__name__", str(hint))


def _kind(value: object) -> str:
    return f"{type(value).__name__} {clip(repr(value))}"
