"""Commands about what is installed: ``zoo list``, ``zoo info``, ``zoo plugins``, ``zoo docs``."""

from __future__ import annotations

import argparse
import fnmatch
import sys

from zoo.cli import path
from zoo.errors import ZooError
from zoo.names import is_name
from zoo.registry.hookspecs import KINDS, hookimpl
from zoo.registry.library import library_version, pretrained_tags
from zoo.registry.plugins import clash_message
from zoo.text import did_you_mean, plural, table


@hookimpl
def register_commands(register):
    register("list", list_, help="list registered components (or the catalog's models and recipes)",
             arguments=_list_arguments, description="List registered components, or with --pretrained / "
                                                    "--recipes the models and recipes of every catalog.")
    register("info", info, help="describe a component, or a published model and its local builds",
             arguments=_info_arguments,
             description="Show a component's summary, plugin and parameters; for a model name, its catalog "
                         "entry and its local builds, and which weights each name form loads.")
    register("plugins", plugins, help="list plugins and their status", description="List plugins: loaded, "
                                                                                   "broken or disabled.")
    register("docs", docs, help="write the component reference or the recipe key tables (Markdown)",
             arguments=_docs_arguments,
             description="Render the component reference of every installed plugin (or, with --recipes, the "
                         "recipe key tables of the schema) as Markdown: to stdout, to a file (--out), or compare "
                         "with a file (--check, exit 1 if stale).")
    register("help", help_, help="show the help of a command (zoo help build is zoo build --help)",
             arguments=lambda p: p.add_argument("topic", nargs="?", metavar="COMMAND", help="a command"))


def help_(args: argparse.Namespace) -> int:
    from zoo.cli import parser

    top = parser(args.registry)
    if args.topic is None:
        top.print_help()
        return 0
    commands = next(a for a in top._subparsers._group_actions if isinstance(a, argparse._SubParsersAction)).choices
    if args.topic not in commands:
        raise ZooError(f"no command '{args.topic}'.{did_you_mean(args.topic, commands)} zoo --help lists them")
    commands[args.topic].print_help()
    return 0


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="name filter; wildcards allowed ('*attention*'), plain text matches anywhere")
    p.add_argument("--kind", choices=list(KINDS), help="only components of this kind")
    p.add_argument("--pretrained", action="store_true",
                   help="list the pretrained models of zoo's and the plugins' catalogs instead")
    p.add_argument("--recipes", action="store_true", help="list the recipes zoo and the plugins ship instead")


def list_(args: argparse.Namespace) -> int:
    from zoo.recipe import catalog

    pattern = args.pattern
    if pattern and not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    registry = args.registry
    if args.pretrained:
        found = [(key, e) for key, e in catalog.entries(registry).items() if _matches(key, pattern)]
        rows = [(key, e.plugin, " ".join(str(m) for m in e.metrics), f"{e.params:,}", "shipped" if e.file else "url",
                 e.summary) for key, e in found]
        tags = pretrained_tags(registry, pattern)
        if pattern:  # a library's tags, by the thousand, when asked for
            rows += [(key, key.partition(":")[0], "", "", source, f"{library}'s pretrained {key.partition(':')[2]}")
                     for key, (source, library) in sorted(tags.items())]
        print(table(("NAME", "PLUGIN", "SCORE", "PARAMS", "WEIGHTS", "SUMMARY"), rows))
        counts: dict[str, int] = {}
        for key, (_, library) in tags.items() if not pattern else ():
            counts[key.partition(":")[0]] = counts.get(key.partition(":")[0], 0) + 1
        for plugin, count in counts.items():
            print(f"\n{count:,} pretrained weights of plugin {plugin}: zoo list --pretrained '{plugin}:*' lists them")
        return 0
    if args.recipes:
        found = [(key, r) for key, r in catalog.recipe_entries(registry).items() if _matches(key, pattern)]
        print(table(("NAME", "PLUGIN", "SUMMARY"), [(key, r.plugin, r.summary) for key, r in found]))
        print("\nzoo build NAME (or zoo check NAME) runs one")
        return 0
    found = registry.components(args.kind, pattern)
    libraries: dict[str, list] = {}
    if pattern is None:  # another library's architectures, by the thousand: counted, listed when asked for
        for c in found:
            if c.library:
                libraries.setdefault(c.plugin.name, []).append(c)
        found = [c for c in found if not c.library]
    if not found and not libraries:
        print(f"no components match {args.pattern!r}" if args.pattern else "no components registered")
        return 0
    print(table(("NAME", "KIND", "PLUGIN", "SUMMARY"), [(c.name, c.kind, c.plugin.name, c.summary) for c in found]))
    for plugin, group in libraries.items():
        print(f"\n{len(group):,} {plural(group[0].kind, len(group))} of {group[0].library} {library_version(group[0].library)} (plugin {plugin}): "
              f"zoo list '{plugin}:*' lists them, zoo list '{plugin}:*vit*' some")
    for group in registry.conflicts():
        if not any(c.library for c in group):
            print(f"\nconflict: {clash_message(group)}")
    return 0


def _matches(name: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name.rpartition(":")[2], pattern)


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="component or model name, or plugin:name")
    p.add_argument("--kind", choices=list(KINDS), help="which kind, when the name exists in several")


def info(args: argparse.Namespace) -> int:
    from zoo.recipe import catalog
    from zoo.weights import store

    registry = args.registry
    bare = args.name.rpartition(":")[2]
    model_name = args.kind in (None, "model") and is_name(bare)
    entry = catalog.get(args.name, registry) if model_name else None
    local = store.builds(bare) if model_name and ":" not in args.name else []
    try:
        component = registry.get(args.name, args.kind)
    except ZooError:
        if entry is None and not local:
            raise
        component = None
    if component is not None:
        _describe_component(component)
    if entry is not None or local:
        if component is not None:
            print()
        _describe_model(bare, entry, local)
    return 0


def _describe_component(component) -> None:
    plugin = component.plugin
    factory = component.factory if isinstance(component.factory, str) else repr(component.factory)
    print(f"{component.name} ({component.kind})")
    if component.summary:
        print(f"  {component.summary}")
    print(f"plugin: {plugin.name} ({plugin.dist} {plugin.version}), factory {factory}")
    print("parameters:" if component.params else "parameters: none")
    for param in component.params:
        print(f"  {param}")


def _describe_model(name: str, entry, local: list) -> None:
    if entry is not None:
        print(f"published {entry.qualified_name} (catalog of plugin {entry.plugin}): {entry.summary}")
        for metric in entry.metrics:
            print(f"  {metric}")
        print(f"  weights {entry.file or entry.url} (sha256 {entry.sha256[:16]}...), {entry.params:,} parameters")
        print(f"  recipe {entry.recipe}; license {entry.license}; tags {', '.join(entry.tags)}")
        print(f"zoo.load('{entry.qualified_name}') loads these published weights")
    if local:
        latest = local[-1]
        print(f"local builds: {len(local)}, the latest {latest.label} ({latest.sha256[:12]}, recorded "
              f"{latest.recorded}, from {latest.run})")
        print(f"zoo.load('{name}@latest') or '{name}@N' loads one; all of them: zoo builds {name}")
    elif entry is not None:
        print(f"no local builds of {name} (zoo build {name} makes {name}@1)")


def plugins(args: argparse.Namespace) -> int:
    registry = args.registry
    provides: dict[str, dict[str, int]] = {}
    for c in registry.components():
        kinds = provides.setdefault(c.plugin.name, {})
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    for command in registry.commands():
        kinds = provides.setdefault(command.plugin.name, {})
        kinds["command"] = kinds.get("command", 0) + 1
    rows = [(p.name, p.status, f"{p.dist} {p.version}".strip(), p.module,
             ", ".join(f"{n} {plural(kind, n)}" for kind, n in provides.get(p.name, {}).items()))
            for p in registry.plugins]
    print(table(("PLUGIN", "STATUS", "DISTRIBUTION", "MODULE", "PROVIDES"), rows))
    for p in registry.plugins:
        if p.error or p.warning:
            print(f"\n{p.name}: {p.error or 'warning: ' + p.warning}")
    return 0


def _docs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipes", action="store_true",
                   help="the recipe key tables; --out and --check replace or compare the block between "
                        "<!-- schema:start --> and <!-- schema:end --> in FILE")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--out", type=path, help="file to write (docs/components.md in zoo's repository)")
    group.add_argument("--check", type=path, metavar="FILE", help="exit 1 unless FILE matches the registry")


def docs(args: argparse.Namespace) -> int:
    from zoo.files import atomic_write_bytes

    target = args.check or args.out
    current = target.read_text() if target is not None and target.is_file() else ""
    if args.recipes:
        from zoo.recipe.reference import reference, splice

        text = splice(current, reference()) if target is not None else reference()
    else:
        from zoo.registry.reference import render

        text = render(args.registry)
    if args.check:
        if current != text:
            print(f"zoo: {args.check} is out of date; run: zoo docs{' --recipes' if args.recipes else ''} "
                  f"--out {args.check}", file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
    elif args.out:
        atomic_write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
