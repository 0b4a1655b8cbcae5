"""Commands about trained models: ``zoo import``, ``zoo builds``, ``zoo prune``, ``zoo verify``, ``zoo predict``,
``zoo export``, ``zoo card``, ``zoo push``, ``zoo reproduce`` and ``zoo inspect``. Each command that
loads weights says which, in one line on stderr (name, where they come from, sha256 prefix)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from zoo.cli import path, positive
from zoo.errors import ZooError
from zoo.registry.hookspecs import hookimpl
from zoo.text import did_you_mean, table

MODEL_HELP = "a published model (NAME), a local build (NAME@latest, NAME@best, NAME@3) or a weights file"
TOKENS = re.compile(r"\d+([, ]+\d+)*")


@hookimpl
def register_commands(register):
    register("builds", builds, help="list the local builds of a model, with metrics and recipe changes",
             arguments=lambda p: p.add_argument("name", help="model name (a recipe's name)"),
             description="List every build of NAME in the local store, oldest first: its version (load one "
                         "with zoo.load('NAME@3')), sha256, metrics, what its recipe changed from the build "
                         "before, and its run folder.")
    register("prune", prune, help="delete old local builds of a model", arguments=_prune_arguments,
             description="Delete all but the newest --keep builds of NAME from the local store (the latest is "
                         "always kept). Run folders are not touched.")
    register("verify", verify, help="re-score a model against its declared figure", arguments=_verify_arguments,
             description="Re-score a model on its dataset and split: a catalog model against its catalog's figures, "
                         "other weights (NAME@3, a file, hf-hub:) against the metrics their file records; exit 1 on "
                         "a mismatch beyond 0.001.")
    register("predict", predict, help="predict on image files, .npy arrays or token id lists",
             arguments=_predict_arguments,
             description="Load a model and print its top predictions for each input: an image file (converted "
                         "and resized to what the model takes), a .npy array, or token ids like 3,5,7.")
    register("export", export, help="export a model (ONNX, torch.export, TorchScript, or a plugin's format)",
             arguments=_export_arguments,
             description="Export a model with a dynamic batch dimension and its evaluation transforms built in; "
                         "write its input spec, labels and source sha256 beside it (FILE.json); check the export "
                         "against the PyTorch model first. Formats: zoo list --kind exporter.")
    register("card", card, help="write a model card (Markdown) made of the facts its weights record",
             arguments=_card_arguments,
             description="Print (or write) a Markdown model card: architecture and parameter count, metrics and "
                         "how they were measured (re-measured by zoo verify for catalog models), input and labels, "
                         "training facts, fine-tuning provenance, license, hashes, versions and the recipe. "
                         "Sections without facts are left out.")
    register("push", push, help="write a model as a Hugging Face Hub repo, to a folder or the Hub",
             arguments=_push_arguments,
             description="Write MODEL's repo -- model.safetensors (zoo's file, metadata intact), config.json, "
                         "README.md (the model card, with the front matter the Hub renders: library, license, "
                         "tags, datasets, metrics as model-index) and recipe.yaml -- to DEST: a folder, or "
                         "hf-hub:ORG/REPO[@BRANCH] (the 'hub' extra; token from HF_TOKEN or 'hf auth login'), "
                         "or a destination a plugin adds (mlflow:NAME, a version of a registered model, with the "
                         "'mlflow' extra). An unchanged model is not pushed again; a different file already there "
                         "is replaced only with --force.")
    register("reproduce", reproduce, help="train a model again from its recorded recipe and compare the tensors",
             arguments=_reproduce_arguments,
             description="Train MODEL again from the recipe inside its weights file, on the data it names, and "
                         "compare: identical tensors, or the largest difference, the metric deltas and the "
                         "reasons zoo can see. The run goes to $ZOO_HOME/reproductions (not the store); "
                         "zoo card shows the last result. Exit 1 when the tensors differ. The file is untrusted: "
                         "nothing it names is fetched without --allow-downloads, and a run of more than 100,000 "
                         "batches or 10 million samples an epoch needs --force.")
    register("import", import_, help="bring another library's pretrained weights into the store as a zoo file",
             arguments=_import_arguments,
             description="Fetch pretrained weights with their library's own loader (torchvision's: "
                         "torchvision:resnet18.IMAGENET1K_V1), record their preprocessing, classes and figures, "
                         "and file them in the store as a zoo safetensors file (NAME@1). timm's weights need no "
                         "import: zoo.load('hf-hub:timm/resnet18.a1_in1k') converts them.")
    register("inspect", inspect, help="per-feature activation statistics of one module", arguments=_inspect_arguments,
             description="Feed a batch through a model and report the per-feature mean and standard deviation "
                         "of one module's input and output, as a table and a PNG (the notebook's LayerNorm "
                         "analysis).")


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="LIBRARY:ARCHITECTURE.WEIGHTS", help="like torchvision:resnet18.IMAGENET1K_V1")
    p.add_argument("--url", help="fetch the file from this mirror instead of the library's own address (its name "
                                 "keeps the library's hash prefix, which is checked)")


def import_(args: argparse.Namespace) -> int:
    from zoo.weights.imported import import_weights

    build = import_weights(args.name, args.url, args.registry)
    print(f"imported {args.name} as {build.label} (sha256 {build.sha256[:12]}): zoo.load('{build.label}'), "
          f"zoo predict {build.label} IMAGE")
    return 0


def builds(args: argparse.Namespace) -> int:
    from zoo.weights import store

    known = store.builds(args.name)
    if not known:
        raise ZooError(f"no local builds of '{args.name}'{did_you_mean(args.name, store.names())}")
    latest = store.latest(args.name)
    rows = []
    for before, build in zip([None, *known], known):
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in sorted(build.metrics.items()) if isinstance(v, (int, float)))
        rows.append((f"@{build.version}" + (" latest" if build.version == latest.version else ""), build.recorded,
                     build.sha256[:12], metrics, recipe_changes(before.recipe, build.recipe) if before else "",
                     build.run + (f" (search trial {build.origin['trial']})" if "trial" in build.origin else "")))
    print(table(("BUILD", "RECORDED", "SHA256", "METRICS", "RECIPE CHANGES", "RUN"), rows))
    return 0


def recipe_changes(before: dict, after: dict) -> str:
    """What changed from one recorded recipe to the next, as 'key: old -> new' items."""
    old, new = _flatten(before), _flatten(after)
    changed = [f"{k}: {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(old.keys() | new.keys())
               if old.get(k) != new.get(k)]
    return "; ".join(changed) if changed else "(same recipe)"


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flatten(value, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: data}


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="model name")
    p.add_argument("--keep", type=int, required=True, metavar="K", help="how many of the newest builds to keep")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, and delete nothing")
    p.add_argument("--yes", action="store_true", help="delete without asking (what a script gives)")


def prune(args: argparse.Namespace) -> int:
    from zoo.weights import store

    going = store.prune(args.name, args.keep, dry_run=True)
    for build in going:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in sorted(build.metrics.items()) if isinstance(v, (int, float)))
        print(f"{'would delete' if args.dry_run else 'deletes'} {build.label} ({build.sha256[:12]}, recorded "
              f"{build.recorded}{', ' + metrics if metrics else ''})")
    if args.dry_run or not going:
        print(f"{args.name}: {len(going)} of {len(store.builds(args.name))} build(s) would be deleted"
              if args.dry_run else f"{args.name}: nothing to delete")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise ZooError(f"zoo prune would delete {len(going)} build(s) of {args.name} (listed above): confirm with "
                           "--yes, or look first with --dry-run")
        if input(f"delete these {len(going)} build(s)? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    gone = store.prune(args.name, args.keep)
    print(f"{args.name}: {len(store.builds(args.name))} build(s) kept, {len(gone)} deleted")
    return 0


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a catalog model (zoo list --pretrained), or any weights zoo.load takes "
                                           "(checked against the metrics their file records)")
    p.add_argument("--all", action="store_true",
                   help="every model of zoo's and the plugins' catalogs (one whose data cannot be reached is skipped)")


def verify(args: argparse.Namespace) -> int:
    from zoo.recipe import catalog
    from zoo.use.verify import TOLERANCE
    from zoo.use.verify import verify as measure

    if args.all == bool(args.name):
        raise ZooError("give a model name or --all")
    names = list(catalog.entries(args.registry)) if args.all else [args.name]
    failed, skipped = [], 0
    for name in names:
        try:
            checks = measure(name, args.registry)
        except ZooError as exc:
            if not args.all:
                raise
            print(f"{name}: skipped: {exc}")
            skipped += 1
            continue
        for check in checks:
            status = "ok" if check.ok else "MISMATCH"
            print(f"{name}: {check.metric.metric} on {check.metric.dataset} {check.metric.split}: "
                  f"measured {check.measured:.4f}, {check.source} {check.metric.value:.4f}  {status}")
        if not all(check.ok for check in checks):
            failed.append(name)
    if args.all:
        print(f"verified {len(names) - skipped - len(failed)} of {len(names)} catalog models; {len(failed)} "
              f"mismatched, {skipped} skipped")
    if failed:
        print(f"zoo: {', '.join(failed)} does not score its declared figure (tolerance {TOLERANCE})", file=sys.stderr)
        return 1
    return 0


def loaded(name: str, registry) -> object:
    """The model ``name`` loads, after saying which weights these are on stderr."""
    from zoo.weights.load import load_located
    from zoo.weights.locate import locate

    located = locate(name, registry)
    print(f"zoo: weights {located.describe()}", file=sys.stderr)
    return load_located(located, registry)


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, .npy file, or token ids (3,5,7)")
    p.add_argument("--top-k", type=positive, default=3, help="classes to show per input (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per input")


def predict(args: argparse.Namespace) -> int:
    from zoo.use.predict import facts
    from zoo.use.predict import predict as run

    model = loaded(args.model, args.registry)
    known = facts(model, args.registry)
    results = []
    for raw in args.inputs:
        item = [int(t) for t in re.split(r"[, ]+", raw)] if TOKENS.fullmatch(raw) and not Path(raw).exists() else raw
        try:
            [result] = run(model, item, args.top_k, known=known)
        except ZooError as exc:
            message = str(exc)
            raise ZooError(message if message.startswith(raw) else f"{raw}: {message}") from None
        if "warning" in result:
            print(f"zoo: warning: {raw}: {result['warning']}", file=sys.stderr)
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


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--format", required=True, metavar="FORMAT",
                   help="an exporter: onnx, torch-export, torchscript, or a plugin's (zoo list --kind exporter)")
    p.add_argument("--out", type=path, help="file to write (default: NAME and the format's suffix, here)")


def export(args: argparse.Namespace) -> int:
    from zoo.use.export import TOLERANCE
    from zoo.use.export import export as write

    args.registry.get(args.format, "exporter")  # an unknown format fails before the model loads
    done = write(loaded(args.model, args.registry), args.format, args.registry, args.out)
    size = done.path.stat().st_size
    print(f"wrote {done.path} ({size / 1e6:.1f} MB) and {done.facts}")
    print(f"parity with the PyTorch model on batches of 1, 3 and 7: max abs difference {done.max_abs_diff:.2g} "
          f"(tolerance {TOLERANCE:g})")
    return 0


def _card_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--out", type=path, help="file to write instead of printing")
    p.add_argument("--no-verify", action="store_true", help="do not re-measure a catalog model's metrics")


def card(args: argparse.Namespace) -> int:
    from zoo.files import atomic_write_bytes
    from zoo.use.card import card as write

    text = write(loaded(args.model, args.registry), args.registry, verify=not args.no_verify)
    if args.out:
        if args.out.is_dir():
            raise ZooError(f"--out {args.out} is a folder; give the file to write")
        atomic_write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("dest", metavar="DEST", help="a folder, hf-hub:ORG/REPO[@BRANCH], or a plugin's (mlflow:NAME)")
    p.add_argument("--force", action="store_true", help="replace files already there with other content")


def push(args: argparse.Namespace) -> int:
    from zoo.use.share import push as write

    model = loaded(args.model, args.registry)
    source = model.zoo_source
    if source.source == "local":  # a moving name (@latest, @best): say which build it is before publishing it
        print(build_line(source.label), file=sys.stderr)
    print(write(model, args.dest, args.registry, force=args.force))
    return 0


def build_line(label: str) -> str:
    """A local build in one line: its metrics, and what its recipe changed from the build before."""
    from zoo.weights import store

    name, version = store.split(label)
    known = store.builds(name)
    build = store.get(name, version)
    before = next((b for b in reversed(known) if b.version < build.version), None)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(build.metrics.items()) if isinstance(v, (int, float)))
    changes = recipe_changes(before.recipe, build.recipe) if before else "the first build"
    return f"zoo: {build.label}, recorded {build.recorded}: {metrics or 'no metrics'}; recipe: {changes}"


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--allow-downloads", action="store_true",
                   help="fetch what the recipe names (dataset URLs and downloads, Hub weights), listed first")
    p.add_argument("--force", action="store_true",
                   help="train past 100,000 batches or 10 million samples an epoch, if the recipe asks for it")


def reproduce(args: argparse.Namespace) -> int:
    from zoo.use.reproduce import reproduce as again

    from zoo.training.loop import Interrupted

    try:
        found = again(args.model, args.registry, allow_downloads=args.allow_downloads, force=args.force,
                      log=lambda line: print(line, file=sys.stderr))
    except Interrupted as exc:
        print(f"zoo: reproduction {exc}; nothing was compared (zoo reproduce {args.model} starts it again)",
              file=sys.stderr)
        return 130
    print(found.summary())
    print(f"reproduced in {found.seconds:.0f} s with torch {found.torch} on {found.cpu}; run: {found.run}")
    return 1 if found.tier == "differs" else 0


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a published model, a local build, a weights file, or a registered layer or model "
                                 "(untrained; needs --input-shape)")
    p.add_argument("--module", required=True, help="submodule name, full (blocks.0.feed_forward) or a unique "
                                                   "last part (layer_norm)")
    p.add_argument("--input-shape", type=_shape, metavar="N,N,...",
                   help="feed standard-normal input of this shape instead of the model's own data")
    p.add_argument("--batch", type=positive, default=256, help="how many of the model's data samples, from the "
                                                                "first (default 256)")
    p.add_argument("--split", help="data split (default: the recipe's eval split)")
    p.add_argument("--seed", type=int, default=0, help="seed for random input and untrained weights (default 0)")
    p.add_argument("--out", type=path, help="PNG to write (default: MODEL-MODULE.png here)")
    p.add_argument("--no-plot", action="store_true", help="print the table only")


def inspect(args: argparse.Namespace) -> int:
    from zoo import plots
    from zoo.use.inspect import capture, find_module, subject

    if not args.no_plot:
        plots.require("zoo inspect (use --no-plot for the table alone)")
    target = subject(args.model, args.registry, args.input_shape, args.batch, args.split, args.seed)
    name, module = find_module(target.model, args.module)
    stats = capture(target.model, module, target.inputs)
    print(f"{name} ({type(module).__name__}) in {target.description}")
    rows = [(where, str(len(s.mean)), f"{s.mean.mean():+.4f}", f"{s.mean.abs().max():.4f}", f"{s.std.mean():.4f}",
             f"{s.std.min():.4f}..{s.std.max():.4f}") for where, s in stats.items()]
    print(table(("", "FEATURES", "MEAN OF MEANS", "MAX |MEAN|", "MEAN STD", "STD RANGE"), rows))
    if not args.no_plot:
        out = args.out or Path(f"{Path(args.model).stem}-{name}.png")
        series = {where: (s.mean.tolist(), s.std.tolist()) for where, s in stats.items()}
        plots.feature_stats(out, series, f"{args.model} {name}")
        print(f"wrote {out}")
    return 0


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes separated by commas, like 4,10,312; got {text!r}") from None
    if not shape or min(shape) < 1 or len(shape) > 8 or math.prod(shape) > 1 << 28:
        raise argparse.ArgumentTypeError(f"sizes must be positive, at most 8 of them and 2**28 elements; got {text!r}")
    return shape
