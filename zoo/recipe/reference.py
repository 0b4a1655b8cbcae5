"""The key tables of docs/recipes.md, rendered from the schema's sections (``zoo docs --recipes``)."""

from __future__ import annotations

from dataclasses import MISSING

from zoo.errors import ZooError
from zoo.recipe.keys import SameAs, keys
from zoo.recipe.schema import SECTIONS, Settings
from zoo.typed import describe

START, END = "<!-- schema:start -->\n", "<!-- schema:end -->"


def reference() -> str:
    """The key tables of docs/recipes.md, one per section, as Markdown."""
    parts = []
    for title, cls in (("top level", Settings), *SECTIONS.items()):
        rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
        for name, declared in keys(cls).items():
            default = declared.default
            shown = ("*required*" if default is MISSING else f"same as `{default.key}`" if isinstance(default, SameAs)
                     else f"`{_yaml(default)}`")
            if declared.section is not None:
                what = "a mapping" + (" or null" if default is None else "")
                rows.append(f"| `{name}` | {what} | {shown} | {declared.doc}: see below |")
            else:
                rows.append(f"| `{name}` | {describe(declared.hint)} | {shown} | {declared.doc} |")
        parts.append(f"### {title if title == 'top level' else f'`{title}`'}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def splice(document: str, tables: str) -> str:
    """``document`` with the block between its schema markers replaced by ``tables``."""
    if START not in document or END not in document:
        raise ZooError(f"no '{START.strip()}' ... '{END}' block to replace")
    head, rest = document.split(START, 1)
    return head + START + tables + END + rest.split(END, 1)[1]


def _yaml(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[]" if not value else str(list(value))
    return str(value) if value != "" else '""'
