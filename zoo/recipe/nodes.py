"""Component nodes: a recipe value that names a registered component (``adam``, or a mapping with
``component: adam`` and its parameters), typed as :class:`Node` once validated, so that every later
error still points at the recipe line it came from; and the nodes a weights file records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoo.recipe.parse import COMPONENT, KeyPath, Recipe, RecipeError

WORDS = f"a component: a name, or a mapping with '{COMPONENT}: NAME' and its parameters"


def is_node(value: object) -> bool:
    """Whether plain data is a component node."""
    return isinstance(value, str) or isinstance(value, dict) and isinstance(value.get(COMPONENT), str)


@dataclass(frozen=True, eq=False)
class Node:
    """A component node of a recipe: the registered name it asks for, its parameters (which may hold
    nodes), and where it was written."""

    name: object  # a str once validated; assembly reports anything else at name_path
    params: dict[str, object]
    path: KeyPath
    raw: object = field(repr=False)  # the node as written: a bare name or a mapping
    recipe: Recipe = field(repr=False)

    @property
    def name_path(self) -> KeyPath:
        return self.path if isinstance(self.raw, str) else (*self.path, COMPONENT)

    def error(self, message: str, param: str | None = None) -> RecipeError:
        """An error located at this node, or at one of its parameters."""
        return self.recipe.error(self.path if param is None else (*self.path, param), message)


def node(value: object, path: KeyPath, recipe: Recipe) -> Node:
    """The typed node of a component node's plain data at ``path`` in ``recipe``."""
    if isinstance(value, str):
        return Node(value, {}, path, value, recipe)
    params = {k: _param(v, (*path, k), recipe) for k, v in value.items() if k != COMPONENT}
    return Node(value[COMPONENT], params, path, value, recipe)


def _param(value: object, path: KeyPath, recipe: Recipe) -> object:
    if isinstance(value, dict) and COMPONENT in value:
        return node(value, path, recipe)
    if isinstance(value, list) and any(isinstance(v, dict) and COMPONENT in v for v in value):
        return [_param(v, (*path, i), recipe) for i, v in enumerate(value)]
    return value


def model_node_of(recipe: Recipe) -> Node | None:
    """The model node of a recipe whose other keys may not validate; None when it is malformed."""
    value = recipe.get(("model",))
    return node(value, ("model",), recipe) if is_node(value) else None


def model_node(value: object, source: Path) -> Node:
    """The model node a weights file records; errors name ``source``."""
    recipe = Recipe({"model": value}, {}, source)
    if not is_node(value):
        raise recipe.error(("model",), f"the recorded model is not {WORDS}")
    return node(value, ("model",), recipe)


def transform_nodes(values: Sequence[object], source: Path) -> tuple[Node, ...]:
    """The evaluation transforms' nodes a weights file records; errors name ``source``."""
    recipe = Recipe({"transform": list(values)}, {}, source)
    for index, value in enumerate(values):
        if not is_node(value):
            raise recipe.error(("transform", index), f"the recorded transform is not {WORDS}")
    return tuple(node(value, ("transform", index), recipe) for index, value in enumerate(values))
