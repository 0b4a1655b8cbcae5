"""Recipes: YAML files naming registered components, with ``extends``, ``${a.b}`` and ``--set`` overrides.

Every value keeps the file, line and column it came from, so errors point at the YAML that caused them.
Loading is safe_load-level: only plain YAML types, plus the ``!delete`` tag of the merge rule.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from zoo.errors import ZooError
from zoo.text import did_you_mean

KeyPath = tuple  # of str keys and int list indexes
COMPONENT = "component"  # the key that makes a mapping a component node
DELETE_TAG = "!delete"
PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-4 as a float (YAML 1.1 insists on a dot: 1.0e-4)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Delete:
    def __repr__(self) -> str:
        return DELETE_TAG


DELETE = _Delete()


@dataclass(frozen=True)
class Mark:
    """Where a value was written: a file position, or a command-line override."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


class RecipeError(ZooError):
    """A recipe problem, located at ``file:line:column`` and a key path."""

    def __init__(self, message: str, mark: Mark | None = None, path: KeyPath = ()):
        prefix = "".join(f"{part}: " for part in (mark, format_path(path)) if part)
        super().__init__(prefix + message)
        self.mark, self.path, self.reason = mark, path, message


class RecipeErrors(RecipeError):
    """Several independent recipe problems, reported together as a compiler does; ``errors`` holds
    each (the first one's mark and path are this error's)."""

    def __init__(self, errors: Sequence[RecipeError]):
        ZooError.__init__(self, "\n".join(str(e) for e in errors))
        self.errors = list(errors)
        self.mark, self.path, self.reason = errors[0].mark, errors[0].path, errors[0].reason


def raise_all(errors: Sequence[RecipeError]) -> None:
    """Raise the one error, or all of them together in file order; nothing when there are none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise RecipeErrors(sorted(errors, key=lambda e: (e.mark.file, e.mark.line, e.mark.column) if e.mark else ("", 0, 0)))


def format_path(path: Sequence) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_path(text: str) -> KeyPath:
    """'model.layers[2].out_features' -> ('model', 'layers', 2, 'out_features')."""
    if not re.fullmatch(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*", text):
        raise ZooError(f"'{text}' is not a key path like train.epochs or model.layers[0].out_features")
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", text))


@dataclass
class Recipe:
    """A loaded recipe: plain data, and the mark of every key path in it."""

    data: dict
    marks: dict[KeyPath, Mark] = field(repr=False)
    source: Path
    files: tuple[Path, ...] = ()  # the recipe and every file it extends

    @property
    def name(self) -> str:
        return self.data["name"]

    def mark(self, path: KeyPath) -> Mark:
        """The mark of ``path``, or of its nearest ancestor that has one, or at least the file."""
        return _nearest(self.marks, path) or Mark(str(self.source))

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return RecipeError(message, self.mark(path), path)

    def get(self, path: KeyPath, default: object = None) -> object:
        return value_at(self.data, path, default)

    def with_overrides(self, overrides: Iterable[tuple[str, object]], source: KeyPath = ("sweep",)) -> Recipe:
        """A copy with ``(key path, value)`` pairs set, as sweeps do; each set value is marked where
        ``source + (key path,)`` was written. Paths must exist."""
        data, marks = copy.deepcopy(self.data), dict(self.marks)
        for text, value in overrides:
            _set(data, marks, parse_path(text), value, self.mark((*source, text)))
        return Recipe(data, marks, self.source, self.files)


def value_at(data: object, path: KeyPath, default: object = None) -> object:
    """The value at key path ``path`` in nested dicts and lists, or ``default``."""
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return default
    return node


def load(path: str | Path, overrides: Sequence[str] = (), known: Collection[KeyPath] = ()) -> Recipe:
    """Read a recipe file, apply ``extends``, then ``--set`` overrides, then ``${...}`` interpolation.

    ``--set`` may change any key the recipe has and add the key paths in ``known``."""
    source = Path(path)
    if not source.is_file():
        raise ZooError(f"recipe file not found: {source}")
    data, marks, files = _load_extending(source.resolve(), ())
    for text in overrides:
        _apply_override(data, marks, text, known)
    _interpolate(data, marks)
    return Recipe(data, marks, source, files)


def _load_extending(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict, tuple[Path, ...]]:
    data, marks = parse_file(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        _strip_deletes(data)
        return data, marks, (path,)
    where = marks[("extends",)]
    if not isinstance(base_name, str):
        raise RecipeError("extends takes one file name, relative to this recipe", where, ("extends",))
    base_path = (path.parent / base_name).resolve()
    if not base_path.is_file():
        raise RecipeError(f"extends '{base_name}': no such file {base_path}", where, ("extends",))
    if base_path in (*chain, path):
        cycle = " -> ".join(p.name for p in (*chain, path, base_path))
        raise RecipeError(f"extends forms a cycle: {cycle}", where, ("extends",))
    base, base_marks, files = _load_extending(base_path, (*chain, path))
    del marks[("extends",)]
    _merge(base, data, (), base_marks, marks)
    _strip_deletes(base)
    return base, base_marks, (path, *files)


def parse_file(path: Path) -> tuple[dict, dict[KeyPath, Mark]]:
    """The mapping in a YAML file and the mark of every key path."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ZooError(f"cannot read recipe {path}: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RecipeError(f"not UTF-8 text: byte {raw[exc.start]:#04x} cannot be decoded; save the recipe as UTF-8",
                          Mark(str(path), line, column)) from None
    loader = None
    try:
        loader = _Loader(text)
        loader.name = str(path)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        # a quote or bracket left open: point where it opens (context_mark), not where the file ends
        unclosed = exc.context_mark is not None and ("stream" in str(exc.problem) or "flow" in str(exc.context))
        mark = exc.context_mark if unclosed else exc.problem_mark or exc.context_mark
        where = Mark(str(path), mark.line + 1, mark.column + 1) if mark else Mark(str(path))
        problem = f"{exc.problem} {exc.context} that starts here: is it closed?" if unclosed else exc.problem or exc.context
        raise RecipeError(f"YAML syntax error: {problem}", where) from None
    except RecursionError:
        mark = loader.get_mark()
        raise RecipeError("the YAML nests too deeply here for Python to read (a recipe is a few levels deep)",
                          Mark(str(path), mark.line + 1, mark.column + 1)) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise RecipeError(f"YAML cannot contain the control character {code:#04x}; remove it",
                          Mark(str(path), line, column)) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"YAML error: {exc}", Mark(str(path))) from exc
    finally:
        if loader is not None:
            loader.dispose()
    if node is None or not isinstance(node, yaml.MappingNode):
        raise RecipeError("a recipe is a mapping of keys (name, model, data, train, ...)", Mark(str(path), 1, 1))
    reader = _Reader(loader, str(path))
    reader.prepare(node)
    return reader.convert(node, ()), reader.marks


MAX_VALUES = 100_000  # a recipe's values once YAML aliases are expanded (a real one has under 200)
MAX_DEPTH = 100  # levels of nesting (a real recipe has under 10)
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class _Reader:
    """Turns a composed YAML document into plain data and the mark of every key path."""

    loader: _Loader
    file: str
    marks: dict[KeyPath, Mark] = field(default_factory=dict)
    merged: dict[int, int] = field(default_factory=dict)  # id of a mapping node -> its leading merged pairs

    def prepare(self, root: yaml.Node) -> None:
        """Flatten merge keys (<<) once per node, and refuse alias bombs ("billion laughs") and aliases
        that contain themselves before anything expands them."""
        sizes: dict[int, int] = {}
        pending: set[int] = set()

        def size(node: yaml.Node, depth: int) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in pending:
                raise RecipeError("a YAML alias here refers to the value that contains it", self.mark(node))
            if depth > MAX_DEPTH:
                raise RecipeError(f"the recipe nests more than {MAX_DEPTH} levels deep here", self.mark(node))
            pending.add(key)
            if isinstance(node, yaml.MappingNode):
                own = sum(1 for key_node, _ in node.value if key_node.tag != MERGE_TAG)
                self.loader.flatten_mapping(node)  # the merged pairs first, then the node's own
                self.merged[key] = len(node.value) - own
                total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size(item, depth + 1) for item in node.value)
            else:
                total = 1
            pending.discard(key)
            if total > MAX_VALUES:
                raise RecipeError(f"this value expands to {total:,} values through YAML aliases (at most "
                                  f"{MAX_VALUES:,}); write it out, or refer to it less", self.mark(node))
            sizes[key] = total
            return total

        size(root, 0)

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: yaml.Node, path: KeyPath) -> object:
        self.marks.setdefault(path, self.mark(node))
        if node.tag == DELETE_TAG:
            return DELETE
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.loader.construct_object(node)
            except yaml.constructor.ConstructorError as exc:
                raise RecipeError(f"tag {node.tag} is not allowed in a recipe", self.mark(node), path) from exc
        if node.tag not in PLAIN_TAGS:
            raise RecipeError(f"tag {node.tag} is not allowed in a recipe", self.mark(node), path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        result: dict = {}
        own_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            key_path = (*path, key)
            if not isinstance(key, str):
                raise RecipeError("keys must be plain strings", self.mark(key_node), path)
            if index < self.merged[id(node)]:
                if key in result:
                    continue  # merged from several mappings: the first one that has the key wins
            else:  # the node's own key: it may override a merged one, not repeat its own
                if key in own_keys:
                    raise RecipeError(f"duplicate key '{key}'", self.mark(key_node), key_path)
                own_keys.add(key)
            if key in result:
                _drop_marks(self.marks, key_path)
            self.marks[key_path] = self.mark(key_node)
            result[key] = self.convert(value_node, key_path)
        return result


def _merge(base: dict, over: dict, path: KeyPath, base_marks: dict, over_marks: dict) -> None:
    """Merge rule: mappings merge key by key, lists and scalars replace, ``!delete`` removes the key."""
    for key, value in over.items():
        key_path = (*path, key)
        if value is DELETE:
            base.pop(key, None)
            _drop_marks(base_marks, key_path)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            base_marks[key_path] = over_marks[key_path]
            _merge(base[key], value, key_path, base_marks, over_marks)
        else:
            base[key] = value
            _drop_marks(base_marks, key_path)
            base_marks.update({p: m for p, m in over_marks.items() if p[: len(key_path)] == key_path})


def _drop_marks(marks: dict, prefix: KeyPath) -> None:
    for p in [p for p in marks if p[: len(prefix)] == prefix]:
        del marks[p]


def _strip_deletes(node: object) -> None:
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if v is DELETE]:
            del node[key]
        for value in node.values():
            _strip_deletes(value)
    elif isinstance(node, list):
        node[:] = [v for v in node if v is not DELETE]
        for value in node:
            _strip_deletes(value)


def _apply_override(data: dict, marks: dict, text: str, known: Collection[KeyPath]) -> None:
    key, sep, raw = text.partition("=")
    where = Mark(f"--set {text}")
    if not sep:
        raise RecipeError("--set takes KEY=VALUE, like train.epochs=3", where)
    try:
        path = parse_path(key.strip())
    except ZooError as exc:
        raise RecipeError(str(exc), where) from exc
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"value is not valid YAML: {raw!r}", where, path) from exc
    parent = value_at(data, path[:-1])
    exists = isinstance(parent, dict) and path[-1] in parent or (
        isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent)
    )
    allowed = exists or path in known or (isinstance(parent, dict) and COMPONENT in parent)
    if not allowed:
        hint = did_you_mean(format_path(path), [format_path(p) for p in known])
        raise RecipeError(f"unknown key {format_path(path)}: --set can only change keys the recipe or the "
                          f"schema has.{hint}", where)
    _set(data, marks, path, value, where)


def _set(data: dict, marks: dict, path: KeyPath, value: object, where: Mark) -> None:
    parent = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            raise RecipeError(f"no key {format_path(path)} to set", where) from None
    if not isinstance(parent, (dict, list)):
        raise RecipeError(f"cannot set {format_path(path)}: its parent is not a mapping or list", where)
    parent[path[-1]] = value
    _drop_marks(marks, path)
    marks[path] = where


INTERPOLATION = re.compile(r"\$\$\{|\$\{([^}]*)\}")


def _interpolate(data: dict, marks: dict) -> None:
    """Replace ``${a.b}`` by the value at a.b (whole string: any type; inside text: as text); ``$${`` escapes."""
    done: dict[KeyPath, object] = {}

    def resolve(value: object, path: KeyPath, stack: tuple[KeyPath, ...]) -> object:
        if isinstance(value, dict):
            return {k: resolve(v, (*path, k), stack) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, (*path, i), stack) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = INTERPOLATION.fullmatch(value)
        if whole and whole.group(1) is not None:
            return copy.deepcopy(lookup(whole.group(1), path, stack))

        def substitute(match: re.Match) -> str:
            if match.group(1) is None:
                return "${"
            found = lookup(match.group(1), path, stack)
            if isinstance(found, (dict, list)):
                raise RecipeError(f"${{{match.group(1)}}} is a {type(found).__name__}; it cannot go inside text",
                                  _nearest(marks, path), path)
            return str(found)

        return INTERPOLATION.sub(substitute, value)

    def lookup(ref: str, path: KeyPath, stack: tuple[KeyPath, ...]) -> object:
        try:
            target = parse_path(ref.strip())
        except ZooError as exc:
            raise RecipeError(f"bad interpolation ${{{ref}}}: {exc}", _nearest(marks, path), path) from exc
        if target in stack or target == path:
            chain = " -> ".join(format_path(p) for p in (*stack, path, target))
            raise RecipeError(f"interpolation cycle: {chain}", _nearest(marks, path), path)
        if target not in done:
            raw = value_at(data, target, DELETE)
            if raw is DELETE:
                raise RecipeError(f"${{{ref}}} refers to {format_path(target)}, which the recipe does not have",
                                  _nearest(marks, path), path)
            done[target] = resolve(raw, target, (*stack, path))
        return done[target]

    data.update(resolve(data, (), ()))


def _nearest(marks: dict, path: KeyPath) -> Mark | None:
    """The mark of ``path``, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in marks:
            return marks[path[:end]]
    return None
