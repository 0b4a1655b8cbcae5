"""Parameters of a component factory: read from source without importing it, and checked per call."""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.text import did_you_mean
from zoo.typed import bounded, conforms, hints_of


@dataclass(frozen=True)
class Param:
    """One parameter of a factory, as text for people: its type hint and default as written."""

    name: str
    type: str = ""
    default: str | None = None  # source text of the default; None when the parameter is required

    @property
    def required(self) -> bool:
        return self.default is None

    def __str__(self) -> str:
        text = f"{self.name}: {self.type}" if self.type else self.name
        return text if self.required else f"{text} = {self.default}"


@dataclass(frozen=True)
class Signature:
    """What a factory accepts: its one-line summary, its parameters, and whether it takes **kwargs."""

    doc: str  # the whole docstring, cleaned
    params: tuple[Param, ...]
    open: bool = False

    @property
    def summary(self) -> str:
        """The first sentence of the docstring, on one line, without reStructuredText's double backticks."""
        paragraph = " ".join(self.doc.split("\n\n", 1)[0].split())
        sentence = re.match(r"(.+?[.!?])(?=\s+[A-Z(]|$)", paragraph)
        return (sentence.group(1) if sentence else paragraph).replace("``", "")


class ParamError(ZooError):
    """A parameter is unknown, missing, or of the wrong type; ``param`` names it."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _clean(doc: str | None) -> str:
    return inspect.cleandoc(doc) if doc and doc.strip() else ""


def static_signature(target: str) -> Signature | None:
    """Read the signature of ``"module:attr"`` from the module's source; None when that is not possible."""
    module, _, attr = target.partition(":")
    origin = _source(module)
    if origin is None:
        return None
    stat = os.stat(origin)
    node = _definitions(origin, stat.st_mtime_ns, stat.st_size).get(attr)
    if isinstance(node, ast.ClassDef):
        init = next(
            (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
        )
        if init is None:  # no parameters of its own: none at all, unless a base class may have some
            return None if node.bases or node.keywords else Signature(_clean(ast.get_docstring(node)), ())
        return _from_ast(ast.get_docstring(node), init.args, skip_first=True)
    if isinstance(node, ast.FunctionDef):
        return _from_ast(ast.get_docstring(node), node.args, skip_first=False)
    return None


@functools.cache
def _source(module: str) -> str | None:
    """The .py file of ``module``, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec.origin


@functools.cache
def _definitions(origin: str, mtime_ns: int, size: int) -> dict[str, ast.AST]:
    """The top-level definitions of a source file, parsed once per version of the file."""
    tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}


def _from_ast(doc: str | None, args: ast.arguments, skip_first: bool) -> Signature:
    positional = [*args.posonlyargs, *args.args][1 if skip_first else 0 :]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]
    params = tuple(
        Param(
            arg.arg,
            ast.unparse(arg.annotation) if arg.annotation else "",
            ast.unparse(default) if default is not None else None,
        )
        for arg, default in pairs
    )
    return Signature(_clean(doc), params, open=args.kwarg is not None)


def live_signature(obj: typing.Callable) -> Signature:
    """The signature of an imported factory."""
    params, open_ = [], False
    for p in inspect.signature(obj).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ = True
        elif p.kind is not p.VAR_POSITIONAL:
            annotation = "" if p.annotation is p.empty else _type_text(p.annotation)
            default = None if p.default is p.empty else repr(p.default)
            params.append(Param(p.name, annotation, default))
    return Signature(_clean(obj.__doc__), tuple(params), open_)


def _type_text(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    if bounded(annotation):
        base, words = bounded(annotation)
        return f"{_type_text(base)} ({words})"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def check_params(component: str, obj: typing.Callable, values: dict[str, object]) -> None:
    """Raise ParamError unless ``values`` are exactly what ``obj`` accepts, each of its hinted type."""
    signature = live_signature(obj)
    by_name = {p.name: p for p in signature.params}
    accepted = ", ".join(str(p) for p in signature.params) or "no parameters"
    hints = type_hints(obj)
    for name, value in values.items():
        if name not in by_name:
            if signature.open:
                continue
            hint = did_you_mean(name, by_name)
            raise ParamError(
                f"{component}: unknown parameter '{name}'.{hint} It accepts: {accepted}", name
            )
        hint_type = hints.get(name)
        if hint_type is not None and not conforms(value, hint_type):
            said = bounded(hint_type)[1] if bounded(hint_type) else by_name[name].type
            raise ParamError(
                f"{component}: parameter '{name}' expects {said}, "
                f"got {type(value).__name__} {value!r}. It accepts: {accepted}",
                name,
            )
    for param in signature.params:
        if param.required and param.name not in values:
            raise ParamError(
                f"{component}: missing required parameter '{param.name}'. It accepts: {accepted}",
                param.name,
            )


def type_hints(obj: typing.Callable) -> dict[str, object]:
    """The resolved type hints of a factory's parameters (its ``__init__``'s for a class), Annotated kept."""
    try:
        return hints_of(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # unresolvable forward references: check nothing rather than guess
        return {}
