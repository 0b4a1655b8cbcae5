"""The ``zoo`` command line. Errors print one line on stderr and exit with status 2."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from zoo import hookspecs
from zoo.errors import ZooError
from zoo.files import atomic_write_bytes
from zoo.registry import ENTRY_POINT_GROUP, NAME, clash_message, default_registry
from zoo.text import did_you_mean, plural, table

EXIT_USAGE = 2


def cmd_list(args: argparse.Namespace) -> int:
    pattern = args.pattern
    if pattern and not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    if args.pretrained:
        return list_pretrained(pattern)
    if args.recipes:
        return list_recipes(pattern)
    registry = default_registry()
    found = registry.components(args.kind, pattern)
    if not found:
        print(f"no components match {args.pattern!r}" if args.pattern else "no components registered")
        return 0
    rows = [(c.name, c.kind, c.plugin.name, c.summary) for c in found]
    print_table(("NAME", "KIND", "PLUGIN", "SUMMARY"), rows)
    for group in registry.conflicts():
        print(f"\nconflict: {clash_message(group)}")
    return 0


def list_pretrained(pattern: str | None) -> int:
    from zoo import catalog

    found = [(key, e) for key, e in catalog.entries().items() if pattern is None or fnmatch.fnmatchcase(e.name, pattern)]
    rows = [(key, e.plugin, " ".join(str(m) for m in e.metrics), f"{e.params:,}", "shipped" if e.file else "url",
             e.summary) for key, e in found]
    print_table(("NAME", "PLUGIN", "SCORE", "PARAMS", "WEIGHTS", "SUMMARY"), rows)
    return 0


def list_recipes(pattern: str | None) -> int:
    from zoo import catalog

    found = [(key, r) for key, r in catalog.recipe_entries().items()
             if pattern is None or fnmatch.fnmatchcase(r.name, pattern)]
    print_table(("NAME", "PLUGIN", "SUMMARY"), [(key, r.plugin, r.summary) for key, r in found])
    print("\nzoo build NAME (or zoo check NAME) runs one")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from zoo import catalog, store

    registry = default_registry()
    model_name = args.kind in (None, "model") and NAME.match(args.name.rpartition(":")[2])
    entry = catalog.get(args.name) if model_name else None
    local = store.latest(args.name) if model_name else None
    try:
        component = registry.get(args.name, args.kind)
    except ZooError:
        if entry is None and local is None:
            raise
        component = None
    if component is not None:
        describe_component(component)
    if entry is not None or local is not None:
        if component is not None:
            print()
        describe_pretrained(args.name, entry, local)
    return 0


def describe_pretrained(name: str, entry, local) -> None:
    if entry is not None:
        print(f"pretrained {entry.name} (catalog of plugin {entry.plugin}): {entry.summary}")
        for metric in entry.metrics:
            print(f"  {metric}")
        weights = entry.file or entry.url
        print(f"  weights {weights} (sha256 {entry.sha256[:16]}...), {entry.params:,} parameters")
        print(f"  recipe {entry.recipe}; license {entry.license}; tags {', '.join(entry.tags)}")
    if local is not None:
        print(f"latest local build: {local.label} {local.path} (recorded {local.recorded}, from {local.run}); "
              f"all of them: zoo builds {name}")
    used = f"the local build {local.label}" if local is not None else "the catalog weights"
    print(f"zoo.load('{name}') uses {used}; source='catalog' or 'local' picks one")


def cmd_builds(args: argparse.Namespace) -> int:
    from zoo import store

    known = store.builds(args.name)
    if not known:
        raise ZooError(f"no local builds of '{args.name}'{did_you_mean(args.name, store.names())}")
    latest = store.latest(args.name)
    rows = []
    for before, build in zip([None, *known], known):
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in sorted(build.metrics.items()))
        rows.append((f"@{build.version}" + (" latest" if build.version == latest.version else ""), build.recorded,
                     build.sha256[:12], metrics, recipe_changes(before.recipe, build.recipe) if before else "",
                     build.run))
    print_table(("BUILD", "RECORDED", "SHA256", "METRICS", "RECIPE CHANGES", "RUN"), rows)
    return 0


def recipe_changes(before: dict, after: dict) -> str:
    """What changed from one recorded recipe to the next, as 'key: old -> new' items."""
    old, new = flatten(before), flatten(after)
    changed = [f"{k}: {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(old.keys() | new.keys())
               if old.get(k) != new.get(k)]
    return "; ".join(changed) if before or not after else ""


def flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in flatten(value, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: data}


def cmd_prune(args: argparse.Namespace) -> int:
    from zoo import store

    gone = store.prune(args.name, args.keep)
    for build in gone:
        print(f"deleted {build.label} ({build.sha256[:12]}, recorded {build.recorded})")
    print(f"{args.name}: {len(store.builds(args.name))} build(s) kept, {len(gone)} deleted")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from zoo import catalog
    from zoo.verify import TOLERANCE, verify

    if args.all == bool(args.name):
        raise ZooError("give a catalog model name or --all")
    names = list(catalog.entries()) if args.all else [args.name]
    failed, skipped = [], 0
    for name in names:
        try:
            checks = verify(name)
        except ZooError as exc:
            if not args.all:
                raise
            print(f"{name}: skipped: {exc}")
            skipped += 1
            continue
        for check in checks:
            status = "ok" if check.ok else "MISMATCH"
            print(f"{name}: {check.metric.metric} on {check.metric.dataset} {check.metric.split}: "
                  f"measured {check.measured:.4f}, catalog {check.metric.value:.4f}  {status}")
        if not all(check.ok for check in checks):
            failed.append(name)
    if args.all:
        print(f"verified {len(names) - skipped - len(failed)} of {len(names)} catalog models; {len(failed)} "
              f"mismatched, {skipped} skipped")
    if failed:
        print(f"zoo: {', '.join(failed)} does not score its catalog figure (tolerance {TOLERANCE})", file=sys.stderr)
        return 1
    return 0


MODEL_HELP = "model name (NAME, NAME@N) or weights file, as zoo.load takes it"
TOKENS = re.compile(r"^\d+([, ]+\d+)*$")


def cmd_predict(args: argparse.Namespace) -> int:
    from zoo.loading import load
    from zoo.prediction import facts, predict

    model = load(args.model)
    known = facts(model)
    results = []
    for raw in args.inputs:
        item = [int(t) for t in re.split(r"[, ]+", raw)] if TOKENS.match(raw) and not Path(raw).exists() else raw
        try:
            [result] = predict(model, item, args.top_k, known=known)
        except ZooError as exc:
            message = str(exc)
            raise ZooError(message if message.startswith(raw) else f"{raw}: {message}") from None
        results.append({"input": raw, **result})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        if "top" in result:
            shown = "  ".join(f"{t['label']} ({t['probability']:.1%})" for t in result["top"])
        elif "tokens" in result:
            shown = " ".join(map(str, result["tokens"])) + f"  (lowest probability {min(result['probabilities']):.1%})"
        else:
            shown = " ".join(f"{v:.4g}" for v in result["values"])
        print(f"{result['input']}: {shown}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.export import TOLERANCE, export
    from zoo.loading import load

    done = export(load(args.model), args.format, args.out)
    size = done.path.stat().st_size
    print(f"wrote {done.path} ({size / 1e6:.1f} MB) and {done.facts}")
    print(f"parity with the PyTorch model on batches of 1, 3 and 7: max abs difference {done.max_abs_diff:.2g} "
          f"(tolerance {TOLERANCE:g})")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from zoo.card import card
    from zoo.loading import load

    text = card(load(args.model), verify=not args.no_verify)
    if args.out:
        atomic_write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def describe_component(component) -> None:
    plugin = component.plugin
    factory = component.factory if isinstance(component.factory, str) else repr(component.factory)
    print(f"{component.name} ({component.kind})")
    if component.summary:
        print(f"  {component.summary}")
    print(f"plugin: {plugin.name} ({plugin.dist} {plugin.version}), factory {factory}")
    print("parameters:" if component.params else "parameters: none")
    for param in component.params:
        print(f"  {param}")


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = default_registry()
    provides: dict[str, dict[str, int]] = {}
    for c in registry.components():
        kinds = provides.setdefault(c.plugin.name, {})
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    rows = [
        (p.name, p.status, f"{p.dist} {p.version}".strip(), p.module,
         ", ".join(f"{n} {plural(kind, n)}" for kind, n in provides.get(p.name, {}).items()))
        for p in registry.plugins
    ]
    print_table(("PLUGIN", "STATUS", "DISTRIBUTION", "MODULE", "PROVIDES"), rows)
    for p in registry.plugins:
        if p.error or p.warning:
            print(f"\n{p.name}: {p.error or 'warning: ' + p.warning}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from zoo import schema
    from zoo.build import check_all, summary
    from zoo.catalog import recipe_path

    checked = check_all(schema.read(recipe_path(args.recipe), args.set))
    print(summary(checked))
    print(f"ok: {checked.settings.recipe.source} is a valid recipe")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from zoo.build import build
    from zoo.training import Interrupted

    if args.nproc:
        return relaunch_with_torchrun(args)

    try:
        build(args.recipe, args.set, out=args.out, resume=args.resume, overwrite=args.overwrite,
              disable=["progress"] if args.no_progress else [])
    except Interrupted as exc:
        print(f"zoo: {exc}; checkpoint saved. Continue with: zoo build {args.recipe} --resume"
              + (f" --out {args.out}" if args.out else ""), file=sys.stderr)
        return 130
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from zoo import plots, runs

    plots.require("zoo plot")
    print(f"wrote {runs.plot(args.run, args.out)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from zoo import plots
    from zoo.activations import capture, find_module, subject

    if not args.no_plot:
        plots.require("zoo inspect (use --no-plot for the table alone)")
    target = subject(args.model, args.input_shape, args.batch, args.split, args.seed)
    name, module = find_module(target.model, args.module)
    stats = capture(target.model, module, target.inputs)
    print(f"{name} ({type(module).__name__}) in {target.description}")
    rows = [(where, str(len(s.mean)), f"{s.mean.mean():+.4f}", f"{s.mean.abs().max():.4f}", f"{s.std.mean():.4f}",
             f"{s.std.min():.4f}..{s.std.max():.4f}") for where, s in stats.items()]
    print_table(("", "FEATURES", "MEAN OF MEANS", "MAX |MEAN|", "MEAN STD", "STD RANGE"), rows)
    if not args.no_plot:
        out = args.out or Path(f"{Path(args.model).stem}-{name}.png")
        series = {where: (s.mean.tolist(), s.std.tolist()) for where, s in stats.items()}
        plots.feature_stats(out, series, f"{args.model} {name}")
        print(f"wrote {out}")
    return 0


def input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes separated by commas, like 4,10,312; got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive; got {text!r}")
    return shape


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def cmd_docs(args: argparse.Namespace) -> int:
    from zoo.files import atomic_write_bytes

    target = args.check or args.out
    current = target.read_text() if target is not None and target.is_file() else ""
    if args.recipes:
        from zoo.schema import reference, splice

        text = splice(current, reference()) if target is not None else reference()
    else:
        from zoo.reference import render

        text = render(default_registry())
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


def relaunch_with_torchrun(args: argparse.Namespace) -> int:
    """``zoo build --nproc N``: the same build under torchrun, N processes on this machine."""
    import subprocess

    if args.nproc < 1:
        raise ZooError("--nproc takes a positive number of processes")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "zoo", "build", args.recipe, *(f"--set={s}" for s in args.set)]
    command += [f"--out={args.out}"] if args.out else []
    command += ["--resume"] if args.resume else []
    command += ["--overwrite"] if args.overwrite else []
    command += ["--no-progress"] if args.no_progress else []
    return subprocess.call(command)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print(table(headers, rows))


def _add_globals(top: argparse.ArgumentParser) -> None:
    top.add_argument(
        "--strict-plugins",
        action="store_true",
        help="fail on the first broken plugin or name clash instead of warning (also ZOO_PLUGINS_STRICT=1)",
    )
    top.add_argument("-p", dest="plugin_options", action="append", default=[], metavar="no:NAME",
                     help="switch plugin NAME off for this command (repeatable; also ZOO_PLUGINS_DISABLE=NAME,...)")


def _globals() -> argparse.ArgumentParser:
    """The global options alone (parsed before the plugins load)."""
    early = argparse.ArgumentParser(add_help=False)
    _add_globals(early)
    return early


def parser() -> argparse.ArgumentParser:
    kinds = list(hookspecs.KINDS)
    top = argparse.ArgumentParser(
        prog="zoo",
        description="A plugin-based PyTorch model zoo: list components, build recipes, load weights.",
    )
    _add_globals(top)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered components", description="List registered components.")
    p.add_argument("pattern", nargs="?", help="name filter; wildcards allowed ('*attention*'), plain text matches anywhere")
    p.add_argument("--kind", choices=kinds, help="only components of this kind")
    p.add_argument("--pretrained", action="store_true",
                   help="list the pretrained models of zoo's and the plugins' catalogs instead")
    p.add_argument("--recipes", action="store_true", help="list the recipes zoo and the plugins ship instead")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("info", help="describe a component or a pretrained model",
                       description="Show a component's summary, plugin and parameters, and for a pretrained "
                                   "model its scores and which weights zoo.load would use.")
    p.add_argument("name", help="component or model name, or plugin:name")
    p.add_argument("--kind", choices=kinds, help="which kind, when the name exists in several")
    p.set_defaults(handler=cmd_info)

    for name, helptext in (("check", "validate a recipe without training"),
                           ("build", "validate, train, evaluate and save a recipe")):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        p.add_argument("recipe", help="recipe file, or the name of a recipe that ships with zoo (e.g. mnist-mlp)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key, value parsed as YAML (repeatable): --set train.epochs=3")
        p.set_defaults(handler=cmd_check if name == "check" else cmd_build)
    p.add_argument("--out", type=Path, help="run folder (default: the first free one of runs/NAME, runs/NAME-2, ...)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's last checkpoint (default folder: the newest runs/NAME-N)")
    p.add_argument("--overwrite", action="store_true", help="write into the run folder even if it holds an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the same as -p no:progress)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train data-parallel in N processes on this machine (relaunches through torchrun)")

    p = sub.add_parser("builds", help="list the local builds of a model, with metrics and recipe changes",
                       description="List every build of NAME in the local store, oldest first: its version "
                                   "(load one with zoo.load('NAME@3')), sha256, metrics and what its recipe "
                                   "changed from the build before.")
    p.add_argument("name", help="model name (a recipe's name)")
    p.set_defaults(handler=cmd_builds)

    p = sub.add_parser("prune", help="delete old local builds of a model",
                       description="Delete all but the newest --keep builds of NAME from the local store "
                                   "(the latest is always kept). Run folders are not touched.")
    p.add_argument("name", help="model name")
    p.add_argument("--keep", type=int, required=True, metavar="K", help="how many of the newest builds to keep")
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("verify", help="re-score a catalog model against its declared figure",
                       description="Re-score a catalog model on its declared dataset and split; exit 1 on a "
                                   "mismatch beyond 0.001.")
    p.add_argument("name", nargs="?", help="catalog model name (see zoo list --pretrained)")
    p.add_argument("--all", action="store_true",
                   help="every model of zoo's and the plugins' catalogs (one whose data cannot be reached is skipped)")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("predict", help="predict on image files, .npy arrays or token id lists",
                       description="Load a model (a name as zoo.load takes it, or a weights file) and print its "
                                   "top predictions for each input: an image file (converted and resized to what "
                                   "the model takes), a .npy array, or token ids like 3,5,7.")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, .npy file, or token ids (3,5,7)")
    p.add_argument("--top-k", type=int, default=3, help="classes to show per input (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per input")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("export", help="export a model as ONNX, a torch.export program or TorchScript",
                       description="Export a model with a dynamic batch dimension and its evaluation transforms "
                                   "built in; write its input spec, labels and source sha256 beside it (FILE.json); "
                                   "check the export against the PyTorch model first (onnxruntime for ONNX).")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--format", required=True, choices=("onnx", "torch-export", "torchscript"))
    p.add_argument("--out", type=Path, help="file to write (default: NAME.onnx, NAME.pt2 or NAME.torchscript.pt here)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("card", help="write a model card (Markdown) made of the facts its weights record",
                       description="Print (or write) a Markdown model card: architecture and parameter count, "
                                   "metrics and how they were measured (re-measured by zoo verify for catalog "
                                   "models), input and labels, training facts, fine-tuning provenance, license, "
                                   "hashes, versions and the recipe. Sections without facts are left out.")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--out", type=Path, help="file to write instead of printing")
    p.add_argument("--no-verify", action="store_true", help="do not re-measure a catalog model's metrics")
    p.set_defaults(handler=cmd_card)

    p = sub.add_parser("plot", help="draw a run's loss and metric curves",
                       description="Draw the loss and metric curves of a run folder (loss.png) or a sweep folder, "
                                   "one curve per variant (sweep.png). Needs matplotlib: pip install 'zoo[plot]'.")
    p.add_argument("run", type=Path, help="run or sweep folder written by zoo build (e.g. runs/mnist-mlp)")
    p.add_argument("--out", type=Path, help="PNG to write (default: loss.png or sweep.png in the folder)")
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser("inspect", help="per-feature activation statistics of one module",
                       description="Feed a batch through a model and report the per-feature mean and standard "
                                   "deviation of one module's input and output, as a table and a PNG (the "
                                   "notebook's LayerNorm analysis).")
    p.add_argument("model", help="a built or catalog model, a weights file, or a registered layer or model "
                                 "(untrained; needs --input-shape)")
    p.add_argument("--module", required=True, help="submodule name, full (blocks.0.feed_forward) or a unique "
                                                   "last part (layer_norm)")
    p.add_argument("--input-shape", type=input_shape, metavar="N,N,...",
                   help="feed standard-normal input of this shape instead of the model's own data")
    p.add_argument("--batch", type=positive_int, default=256, help="how many of the model's data samples, from the "
                                                                   "first (default 256)")
    p.add_argument("--split", help="data split (default: the recipe's eval split)")
    p.add_argument("--seed", type=int, default=0, help="seed for random input and untrained weights (default 0)")
    p.add_argument("--out", type=Path, help="PNG to write (default: MODEL-MODULE.png here)")
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("docs", help="write the component reference or the recipe key tables (Markdown)",
                       description="Render the component reference of every installed plugin (or, with --recipes, "
                                   "the recipe key tables of the schema) as Markdown: to stdout, to a file (--out), "
                                   "or compare with a file (--check, exit 1 if stale).")
    p.add_argument("--recipes", action="store_true",
                   help="the recipe key tables; --out and --check replace or compare the block between "
                        "<!-- schema:start --> and <!-- schema:end --> in FILE")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--out", type=Path, help="file to write (docs/components.md in zoo's repository)")
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 unless FILE matches the registry")
    p.set_defaults(handler=cmd_docs)

    p = sub.add_parser("plugins", help="list plugins and their status", description="List plugins: loaded, broken or disabled.")
    p.set_defaults(handler=cmd_plugins)
    add_plugin_commands(sub)
    return top


def add_plugin_commands(sub) -> None:
    """The commands plugins add, each behind its own guard: one that would replace a command, or
    whose arguments fail, is refused with a warning naming its plugin; the rest of zoo is untouched."""
    from zoo.registry import PluginWarning

    added: dict[str, object] = {}
    for command in default_registry().commands():
        if command.name in sub.choices:
            owner = f"plugin {added[command.name]}" if command.name in added else "zoo's own command"
            warnings.warn(f"plugin {command.plugin}: command '{command.name}' is refused: {owner} has that name",
                          PluginWarning)
            continue
        p = sub.add_parser(command.name, help=f"{command.help} (plugin {command.plugin.name})",
                           description=f"{command.help} From plugin {command.plugin}.")
        try:
            if command.arguments is not None:
                command.arguments(p)
        except Exception as exc:
            warnings.warn(f"plugin {command.plugin}: command '{command.name}' is broken: its arguments raised "
                          f"{type(exc).__name__}: {exc}", PluginWarning)
            p.set_defaults(handler=lambda args, c=command, e=exc: _broken_command(c, e))
            continue
        added[command.name] = command.plugin
        p.set_defaults(handler=lambda args, c=command: _run_command(c, args))


def _run_command(command, args: argparse.Namespace) -> int:
    try:
        return int(command.run(args) or 0)
    except ZooError:
        raise
    except Exception as exc:
        raise ZooError(f"command '{command.name}' of plugin {command.plugin} raised {type(exc).__name__}: {exc}") from exc


def _broken_command(command, error: Exception) -> int:
    raise ZooError(f"command '{command.name}' of plugin {command.plugin} is broken: {type(error).__name__}: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    # the global options first: they decide which plugins load, and plugins add commands
    early, _ = _globals().parse_known_args(argv)
    if early.strict_plugins:
        os.environ["ZOO_PLUGINS_STRICT"] = "1"
    off = [option.removeprefix("no:") for option in early.plugin_options]
    if any(not option.startswith("no:") or not name for option, name in zip(early.plugin_options, off)):
        print("zoo: error: -p takes no:NAME, the name of a plugin to switch off (see zoo plugins)", file=sys.stderr)
        return EXIT_USAGE
    known = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} if off else set()
    for name in off:
        if name not in known:
            print(f"zoo: error: no plugin '{name}' to switch off.{did_you_mean(name, known)} "
                  f"Plugins: {', '.join(sorted(known))}", file=sys.stderr)
            return EXIT_USAGE
    if off:
        # the environment carries it to the registry and to torchrun's workers alike
        already = [n for n in os.environ.get("ZOO_PLUGINS_DISABLE", "").split(",") if n]
        os.environ["ZOO_PLUGINS_DISABLE"] = ",".join([*already, *off])
    try:
        args = parser().parse_args(argv)
    except ZooError as exc:  # the plugins could not be loaded (--strict-plugins)
        print(f"zoo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = args.handler(args)
    except ZooError as exc:
        for error in getattr(exc, "errors", [exc]):  # a recipe's independent errors, one line each
            print(f"zoo: error: {error}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # the reader left (zoo list | head -1): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker: gloo's threads can abort the interpreter's finalization (SIGABRT, seen
        # intermittently; pytorch PR #179291), which torchrun reports as a failed run. Everything is
        # written and closed by now, so leave without finalizing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zoo: warning: {message}", file=sys.stderr)
