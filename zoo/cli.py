"""The ``zoo`` command line. Errors print one line on stderr and exit with status 2."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from zoo import hookspecs
from zoo.errors import ZooError
from zoo.registry import default_registry

EXIT_USAGE = 2


def cmd_list(args: argparse.Namespace) -> int:
    pattern = args.pattern
    if pattern and not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    registry = default_registry()
    found = registry.components(args.kind, pattern)
    if not found:
        print(f"no components match {args.pattern!r}" if args.pattern else "no components registered")
        return 0
    rows = [(c.name, c.kind, c.plugin.name, c.summary) for c in found]
    print_table(("NAME", "KIND", "PLUGIN", "SUMMARY"), rows)
    for group in registry.conflicts():
        choices = " or ".join(c.qualified_name for c in group)
        print(f"\nconflict: {group[0].kind} '{group[0].name}' is registered twice; use {choices}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    component = default_registry().get(args.name, args.kind)
    plugin = component.plugin
    factory = component.factory if isinstance(component.factory, str) else repr(component.factory)
    print(f"{component.name} ({component.kind})")
    if component.summary:
        print(f"  {component.summary}")
    print(f"plugin: {plugin.name} ({plugin.dist} {plugin.version}), factory {factory}")
    print("parameters:" if component.params else "parameters: none")
    for param in component.params:
        print(f"  {param}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = default_registry()
    counts: dict[str, int] = {}
    for c in registry.components():
        counts[c.plugin.name] = counts.get(c.plugin.name, 0) + 1
    rows = [
        (p.name, p.status, f"{p.dist} {p.version}".strip(), p.module, str(counts.get(p.name, 0)))
        for p in registry.plugins
    ]
    print_table(("PLUGIN", "STATUS", "DISTRIBUTION", "MODULE", "COMPONENTS"), rows)
    for p in registry.plugins:
        if p.error:
            print(f"\n{p.name}: {p.error}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from zoo.build import check, summary
    from zoo.catalog import recipe_path
    from zoo.recipe import load

    checked = check(load(recipe_path(args.recipe), args.set))
    print(summary(checked))
    print(f"ok: {checked.recipe.source} is a valid recipe")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from zoo.build import build
    from zoo.training import Interrupted

    try:
        build(args.recipe, args.set, out=args.out, resume=args.resume, progress=not args.no_progress)
    except Interrupted as exc:
        print(f"zoo: {exc}; checkpoint saved. Continue with: zoo build {args.recipe} --resume"
              + (f" --out {args.out}" if args.out else ""), file=sys.stderr)
        return 130
    return 0


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        print("  ".join([*cells, str(row[-1])]).rstrip())


def parser() -> argparse.ArgumentParser:
    kinds = list(hookspecs.KINDS)
    top = argparse.ArgumentParser(
        prog="zoo",
        description="A plugin-based PyTorch model zoo: list components, build recipes, load weights.",
    )
    top.add_argument(
        "--strict-plugins",
        action="store_true",
        help="fail on the first broken plugin instead of warning (also ZOO_PLUGINS_STRICT=1)",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered components", description="List registered components.")
    p.add_argument("pattern", nargs="?", help="name filter; wildcards allowed ('*attention*'), plain text matches anywhere")
    p.add_argument("--kind", choices=kinds, help="only components of this kind")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("info", help="describe one component", description="Show a component's summary, plugin and parameters.")
    p.add_argument("name", help="component name, or plugin:name")
    p.add_argument("--kind", choices=kinds, help="which kind, when the name exists in several")
    p.set_defaults(run=cmd_info)

    for name, helptext in (("check", "validate a recipe without training"),
                           ("build", "validate, train, evaluate and save a recipe")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        p.add_argument("recipe", help="recipe file, or the name of a recipe that ships with zoo (e.g. mnist-mlp)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key, value parsed as YAML (repeatable): --set train.epochs=3")
        p.set_defaults(run=cmd_check if name == "check" else cmd_build)
    p.add_argument("--out", type=Path, help="run folder (default: runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; per-epoch lines only")

    p = sub.add_parser("plugins", help="list plugins and their status", description="List plugins: loaded, broken or disabled.")
    p.set_defaults(run=cmd_plugins)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.strict_plugins:
        os.environ["ZOO_PLUGINS_STRICT"] = "1"
    warnings.showwarning = _show_warning
    try:
        return args.run(args)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zoo: warning: {message}", file=sys.stderr)
