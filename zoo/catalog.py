"""The recipes and pretrained models that ship with zoo."""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError

RECIPES = Path(__file__).parent / "recipes"


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def recipe_path(arg: str) -> Path:
    """A recipe file path as given, or the shipped recipe of that name."""
    path = Path(arg)
    if path.is_file():
        return path
    shipped = RECIPES / f"{arg}.yaml"
    if "/" not in arg and shipped.is_file():
        return shipped
    raise ZooError(
        f"no recipe file '{arg}', and no shipped recipe of that name (shipped: {', '.join(shipped_recipes())})"
    )
