"""The one reader of plain data against type hints: whether a value fits a hint, the value as the
hint's type (lists become tuples where it says tuple, mappings become dataclasses), and the hint in
words for errors and docs. Recipes (zoo.recipe.schema), weights metadata and requests
(:func:`read`) and component parameters (zoo.registry.signature) are all checked here.

A hint may carry its bounds with ``typing.Annotated``: ``Annotated[int, Range(ge=1)]`` is a
positive integer, ``Annotated[str, Pattern(r"cuda(:\\d+)?")]`` a string of that form, and
``Is(test, words)`` any other rule, which replaces the type's own check (the type then says what
the checked value becomes); ``Words`` says how a hint reads. A dataclass checks its own bounds in
``__post_init__`` (raising ValueError), which :func:`read` locates like any other problem."""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

from zoo.errors import ZooError
from zoo.text import clip, did_you_mean


@dataclass(frozen=True)
class Range:
    """Bounds of a number: at least ``ge``, more than ``gt``, at most ``le``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def holds(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le))


@dataclass(frozen=True)
class Pattern:
    """A string that matches ``regex`` whole."""

    regex: str

    def holds(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class Is:
    """A rule the annotation's type cannot say: ``test(value)``, and ``what`` it asks for in words."""

    test: Callable[[object], bool]
    what: str


@dataclass(frozen=True)
class Words:
    """How a hint reads in errors and the reference: 'an integer from 0 to 2**63 - 1'."""

    what: str


class Mismatch(ZooError):
    """A value does not fit a hint; ``where`` says which value (a key path, a field)."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where, self.problem = where, problem


def read(cls: type, data: object, where: str) -> object:
    """An instance of dataclass ``cls`` from the mapping ``data``; keys it does not declare are left out."""
    if not isinstance(data, dict):
        raise Mismatch(where, f"expected a mapping, got {_kind(data)}")
    hints = hints_of(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise Mismatch(where, f"'{f.name}' is missing")
            continue
        values[f.name] = convert(data[f.name], hints[f.name], f"{where}.{f.name}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise Mismatch(where, str(exc)) from None


def hints_of(cls_or_function: object) -> dict[str, object]:
    """The resolved type hints of a dataclass's fields or a function's parameters, Annotated kept."""
    return typing.get_type_hints(cls_or_function, include_extras=True)


def convert(value: object, hint: object, where: str = "", got: Callable[[object], str] | None = None) -> object:
    """``value`` as type ``hint``; Mismatch (a ZooError naming ``where``) if it does not fit, saying
    what it got with ``got`` (default: the value's type and repr)."""
    if got is None:
        got = _kind
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        base, marks = args[0], hint.__metadata__
        rule = next((m for m in marks if isinstance(m, Is)), None)
        if rule is not None:
            if not rule.test(value):
                raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")
            return _as_tuples(value, base)
        converted = convert(value, base, where, got)
        for mark in marks:
            if isinstance(mark, (Range, Pattern)) and converted is not None and not mark.holds(converted):
                raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")
        return converted
    if hint is typing.Any or hint is object:
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise Mismatch(where, f"expects null, got {got(value)}")
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else read(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, where, got)
            except Mismatch:
                continue
        raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")
    if origin is typing.Literal:
        if any(value == arg and type(value) is type(arg) for arg in args):
            return value
        hint_text = did_you_mean(value, [a for a in args if isinstance(a, str)]) if isinstance(value, str) else ""
        raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}" + (f".{hint_text}" if hint_text else ""))
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise Mismatch(where, f"expects {len(args)} items, got {len(value)}")
            items = [convert(v, a, f"{where}[{i}]", got) for i, (v, a) in enumerate(zip(value, args))]
        else:
            items = [convert(v, args[0], f"{where}[{i}]", got) if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(value, dict):
            raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")
        key_type, value_type = args or (object, object)
        return {convert(k, key_type, where, got): convert(v, value_type, f"{where}.{k}", got) for k, v in value.items()}
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        if callable(value):
            return value
        raise Mismatch(where, f"expects a callable, got {got(value)}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and type(value) is hint or hint is list and isinstance(value, list):
        return value
    if isinstance(origin, type) and isinstance(value, origin) or isinstance(hint, type) and isinstance(value, hint):
        return value
    if not isinstance(hint, type) and origin is None:
        return value  # a hint this reader does not know (a string forward reference): checked nowhere else either
    raise Mismatch(where, f"expects {describe(hint)}, got {got(value)}")


def conforms(value: object, hint: object) -> bool:
    """Whether ``value`` fits ``hint``: ints pass for floats, nothing is coerced."""
    try:
        convert(value, hint)
    except Mismatch:
        return False
    return True


def members(hint: object) -> tuple[object, ...]:
    """The types a hint is made of, through Annotated, Union (Optional), list, tuple and Sequence:
    ``tuple[Node, ...] | None`` is made of Node (and None)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return members(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, collections.abc.Sequence):
        return tuple(m for arg in typing.get_args(hint) if arg is not Ellipsis for m in members(arg))
    return () if hint is None else (hint,)


def simple(hint: object) -> tuple[object | None, bool]:
    """``hint`` as one of the types a JSON value maps to -- int, float, bool, str, ``tuple[int, ...]``,
    ``tuple[float, ...]`` -- (None when it is none of them), and whether it admits None."""
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (tuple, list, collections.abc.Sequence) and args:
        inner = {a for a in args if a is not Ellipsis}
        hint = tuple[int, ...] if inner == {int} else tuple[float, ...] if inner == {float} else None
    return (hint if hint in (int, float, bool, str, tuple[int, ...], tuple[float, ...]) else None), optional


def bounded(hint: object) -> tuple[object, str] | None:
    """A hint that carries bounds (``Annotated``): its base type and the whole in words; else None."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    return typing.get_args(hint)[0], describe(hint)


def takes(hint: object, wanted: type) -> bool:
    """Whether ``hint`` is made of ``wanted`` (or a subclass of it): a parameter typed so takes one."""
    return any(m == wanted or isinstance(m, type) and isinstance(wanted, type) and issubclass(m, wanted)
               for m in members(hint))


def _as_tuples(value: object, hint: object) -> object:
    """A value an ``Is`` rule accepted, as its hint's container type (a list as a tuple)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        origin = next((typing.get_origin(a) for a in typing.get_args(hint) if a is not type(None)), None)
    return tuple(value) if origin is tuple and isinstance(value, list) else value


INTEGER_WORDS = {(1, None, None): "a positive integer", (0, None, None): "a non-negative integer"}


def describe(hint: object) -> str:
    """A type hint in words: 'a positive integer', 'a list of strings', 'a string or null'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        marks = hint.__metadata__
        said = next((m.what for m in marks if isinstance(m, (Words, Is))), None)
        if said:
            return said
        base = describe(args[0])
        for mark in marks:
            if isinstance(mark, Range):
                whole = args[0] is int
                known = INTEGER_WORDS.get((mark.ge, mark.gt, mark.le)) if whole else None
                if known:
                    return known
                if mark.gt == 0 and mark.ge is None and mark.le is None:
                    return f"a positive {'integer' if whole else 'number'}"
                low = f"from {mark.ge}" if mark.ge is not None else f"above {mark.gt}" if mark.gt is not None else ""
                high = f" to {mark.le}" if mark.le is not None else ""
                return f"{base} {low}{high}".strip()
            if isinstance(mark, Pattern):
                return f"{base} matching {mark.regex}"
        return base
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return f"a mapping ({hint.__name__})"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
            None: "null", list: "a list"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint: object) -> str:
    words = describe(hint)
    return {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(words, words)


def _kind(value: object) -> str:
    return f"{type(value).__name__} {clip(repr(value))}"
