"""Recipe migrations: every weights file records the recipe it was trained with and that recipe's
schema version (:data:`zoo.recipe.schema.VERSION` when it was written). When a release renames or
moves a key, it bumps the version and adds a :class:`Rename` here; a recorded recipe of an older
version is brought up to date before it is validated, so every weights file ever written still
loads, predicts, verifies and reproduces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from zoo import deprecation
from zoo.errors import ZooError
from zoo.recipe.parse import KeyPath, Recipe, format_path, parse_path


def _this_release() -> str:
    return ".".join(map(str, deprecation.current()))


@dataclass(frozen=True)
class Rename:
    """Schema version ``version`` renamed (or moved) the key ``old`` to ``new``: dotted key paths. A
    recipe file that still uses ``old`` works, with a warning, for one minor version after the zoo
    release ``since`` that renamed it (zoo.deprecation); recorded recipes are migrated forever."""

    version: int
    old: str
    new: str
    since: str = field(default_factory=_this_release)

    def apply(self, data: dict) -> None:
        """Move the value at ``old`` (if the recipe has it) to ``new``, in place."""
        old, new = parse_path(self.old), parse_path(self.new)
        parent = _parent(data, old)
        if not isinstance(parent, dict) or old[-1] not in parent:
            return
        value = parent.pop(old[-1])
        target = data
        for part in new[:-1]:
            target = target.setdefault(part, {})
        target[new[-1]] = value


# In version order; the newest version is zoo.recipe.schema.VERSION.
MIGRATIONS: list[Rename] = []


def migrate(data: dict, version: int, current: int) -> dict:
    """A copy of recipe ``data`` of schema ``version`` brought up to ``current``."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ZooError(f"recipe schema version {version!r} is not a positive integer")
    if version > current:
        raise ZooError(f"written by a newer zoo (recipe schema version {version}; this zoo reads up to {current}): "
                       "upgrade zoo")
    data = copy.deepcopy(data)
    for rename in MIGRATIONS:
        if version < rename.version <= current:
            rename.apply(data)
    return data


def deprecated_keys(recipe: Recipe) -> None:
    """Move the keys of a recipe file that a rename still in its deprecation period covers to their new
    place, in place, each with a warning naming its line and the new key."""
    for rename in MIGRATIONS:
        old, new = parse_path(rename.old), parse_path(rename.new)
        parent = _parent(recipe.data, old)
        if not (isinstance(parent, dict) and old[-1] in parent and deprecation.accepted(rename.since)):
            continue
        deprecation.warn(f"{recipe.mark(old)}: recipe key {rename.old}", rename.new, rename.since, stacklevel=4)
        rename.apply(recipe.data)
        for path in [p for p in recipe.marks if p[: len(old)] == old]:
            recipe.marks[(*new, *path[len(old):])] = recipe.marks.pop(path)


def renamed(path: KeyPath) -> Rename | None:
    """The migration that renamed the key at ``path``, if one did (for a hint when a recipe uses it)."""
    return next((r for r in reversed(MIGRATIONS) if r.old == format_path(path)), None)


def _parent(data: dict, path: KeyPath) -> object:
    node: object = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return node
