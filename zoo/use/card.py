"""``zoo card``: a Markdown model card made of the facts a weights file records (and, for a catalog
model, the catalog's and a fresh ``zoo verify``). A section without facts is left out: nothing is
guessed and no placeholder is written."""

from __future__ import annotations

import yaml
from torch import nn

from zoo.files import file_sha256
from zoo.recipe import catalog
from zoo.recipe.schema import Settings
from zoo.registry import Registry
from zoo.weights.load import settings
from zoo.weights.metadata import WeightsMeta


def card(model: nn.Module, registry: Registry, *, verify: bool = True) -> str:
    """The model card of ``model`` (from ``zoo.load``); ``verify`` re-scores a catalog model."""
    meta = model.zoo_meta
    recipe = None if meta.imported else settings(model)  # imported weights were not trained by zoo
    entry = catalog.get(model.zoo_source.label, registry) if model.zoo_source.source == "catalog" else None
    params = sum(p.numel() for p in model.parameters())
    parts = [f"# {meta.name}"]
    summary = entry.summary if entry else recipe.description if recipe else (
        f"{meta.imported.library}'s pretrained `{meta.imported.tag}`, as a zoo weights file.")
    if summary:
        parts.append(summary)
    parts.append(_section("Architecture", f"{type(model).__name__}, {params:,} parameters, built from this "
                                          f"component node:\n\n{_yaml(meta.model)}"))
    parts.append(_section("Metrics", _metrics(meta, entry, registry if verify else None)))
    parts.append(_section("Input and labels", _input(meta, recipe)))
    parts.append(_section("Training", _training(meta, recipe) if recipe else None))
    parts.append(_section("Imported from", _imported(meta)))
    if meta.init:
        parts.append(_section("Fine-tuned from", _init(meta)))
    license_ = entry.license if entry and entry.license else meta.imported.license if meta.imported else ""
    parts.append(_section("License", license_))
    parts.append(_section("Reproduced", _reproduced(model)))
    parts.append(_section("Files and versions", _files(model)))
    if meta.recipe:
        parts.append(_section("Recipe", "The resolved recipe the weights were trained with:\n\n" + _yaml(meta.recipe)))
    return "\n\n".join(p for p in parts if p) + "\n"


def _section(title: str, body: str | None) -> str | None:
    return f"## {title}\n\n{body}" if body else None


def _yaml(data: object) -> str:
    return "```yaml\n" + yaml.safe_dump(data, sort_keys=False).rstrip() + "\n```"


def _metrics(meta: WeightsMeta, entry: catalog.Entry | None, registry: Registry | None) -> str | None:
    lines = []
    scores = meta.metrics
    if scores:
        epoch = f"after epoch {meta.epoch}" if meta.epoch else "after the last epoch"
        split = meta.evaluation and meta.evaluation.split
        where = f" on the {split} split of {_name(meta.evaluation.dataset)}" if split else ""
        lines.append(f"Recorded by `zoo build` {epoch}{where} (train_loss: the mean over that epoch's "
                     "training batches):\n")
        lines.append(_markdown_table(("metric", "value"), [(k, f"{v:.4f}") for k, v in sorted(scores.items())]))
    if entry and entry.metrics:
        rows = [(m.metric, f"{m.dataset} {m.split}", f"{m.value:.4f}") for m in entry.metrics]
        headers = ("metric", "data", "catalog")
        if registry is not None:
            from zoo.use.verify import TOLERANCE, verify

            checks = verify(entry.qualified_name, registry)
            rows = [(*row, f"{c.measured:.4f}", "ok" if c.ok else "MISMATCH") for row, c in zip(rows, checks)]
            headers += ("measured now (zoo verify)", f"within {TOLERANCE:g}")
        lines.append("\nThe catalog's figures" + (", re-measured by `zoo verify` for this card:\n"
                                                   if registry is not None else ":\n"))
        lines.append(_markdown_table(headers, rows))
    return "\n".join(lines) or None


def _name(dataset: object) -> str:
    return f"`{dataset['component']}`" if isinstance(dataset, dict) else f"`{dataset}`"


def _imported(meta: WeightsMeta) -> str | None:
    found = meta.imported
    if found is None:
        return None
    rows = [("library", found.library), ("weights", f"`{found.tag}`"), ("source", f"`{found.source}`")]
    if found.sha256:
        rows.append(("sha256 of the file as published", f"`{found.sha256}`"))
    return ("Made by another library; zoo converted them, the tensors unchanged:\n\n"
            + _markdown_table(("fact", "value"), rows))


def _input(meta: WeightsMeta, recipe: Settings | None) -> str | None:
    spec, classes = meta.input, meta.classes
    lines = []
    if spec:
        shape = " x ".join(map(str, spec.shape))
        if spec.kind == "image" and spec.preprocess:
            p = spec.preprocess
            resize = f"the shorter side to {p.resize[0]}" if len(p.resize) == 1 else f"to {p.resize[0]} x {p.resize[1]}"
            lines.append(f"One input: an image of any size, resized ({resize}, {p.interpolation}), its centre "
                         f"{p.crop[0]} x {p.crop[1]} cut out, scaled to [0, 1] and normalized with mean "
                         f"{_numbers(p.mean)} and std {_numbers(p.std)}: {spec.dtype} {shape}.")
        elif spec.kind == "image":
            low, high = spec.range or (0.0, 1.0)
            mode = {"L": "grey", "RGB": "colour (RGB)"}.get(spec.mode, "")
            lines.append(f"One input: a {mode} image as {spec.dtype} {shape} with values in "
                         f"[{low}, {high}] (8-bit pixels / 255); batches add a first dimension.")
        elif spec.kind == "tokens":
            lines.append(f"One input: {spec.shape[0]} token ids ({spec.dtype}) in 0..{spec.vocab_size - 1}, "
                         f"padded with {spec.pad_id}; batches add a first dimension.")
        else:
            lines.append(f"One input: a {spec.dtype} tensor of shape {shape}; batches add a first dimension.")
    stats = meta.input_stats
    if spec and stats and spec.kind == "image":
        low, high = spec.range or (0.0, 1.0)
        dark = sum(stats.mean) / len(stats.mean) < (low + high) / 2
        lines.append(f"The training images average {_numbers(stats.mean)} (standard deviation {_numbers(stats.std)}): "
                     f"{'light strokes on a dark' if dark else 'dark shapes on a light'} background. `zoo predict` "
                     "warns about an input far from this (an inverted image, say).")
    transforms = [node.raw for node in recipe.data.eval_transform] if recipe else []
    if transforms:
        lines.append(f"Before the model, the recipe's evaluation transforms: {_yaml(transforms)}")
    if classes:
        shown = ", ".join(f"{i} `{c}`" for i, c in enumerate(classes[:LABELS]))
        lines.append(f"Labels ({len(classes)}): {shown}" + (f", ... ({len(classes) - LABELS} more)." if len(classes) > LABELS
                                                             else "."))
    if lines:
        lines.append("`zoo predict` and `zoo.predict` take raw input and apply all of this.")
    return "\n\n".join(lines) or None


LABELS = 100  # listed in a card; ImageNet's 1,000 would bury it


def _numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _training(meta: WeightsMeta, recipe: Settings) -> str | None:
    train, data = recipe.train, recipe.data
    rows = [("data", f"{_name(data.dataset.raw)}, split `{data.train_split}`")]
    if meta.data_sha256:
        rows.append(("training data sha256", f"`{meta.data_sha256}`"))
    rows += [("epochs", str(train.epochs)), ("seed", str(train.seed)), ("precision", train.precision),
             ("accumulate", str(train.accumulate))]
    for key in ("optimizer", "loss", "schedule"):
        node = getattr(train, key)
        if node is not None:
            options = ", ".join(f"{k} {v}" for k, v in node.params.items())
            rows.append((key, f"{node.name}" + (f" ({options})" if options else "")))
    if meta.processes > 1:
        rows.append(("processes", f"{meta.processes} (torchrun)"))
    if meta.stopped:
        rows.append(("stopped early", f"after epoch {meta.stopped.after_epoch}: {meta.stopped.reason}"))
    if meta.chosen:
        rows.append(("weights kept", f"epoch {meta.chosen.epoch}: {meta.chosen.reason}"))
    return _markdown_table(("fact", "value"), rows)


def _init(meta: WeightsMeta) -> str:
    init = meta.init
    lines = [f"Started from `{init.source}` (sha256 `{init.sha256}`): {init.loaded} tensors loaded."]
    for keys, what in ((init.missing, "kept their initialisation (not in that file)"),
                       (init.unexpected, "were in that file but not the model")):
        if keys:
            lines.append(f"{', '.join(f'`{k}`' for k in keys)} {what}.")
    if init.new_head:
        lines.append(f"A new head, trained from its own initialisation: {', '.join(f'`{k}`' for k in init.new_head)}.")
    if init.mismatched:
        lines.append("Skipped for their shape: " + ", ".join(
            f"`{k}` (model {tuple(a)}, file {tuple(b)})" for k, a, b in init.mismatched) + ".")
    if meta.frozen:
        lines.append(f"Frozen during fine-tuning: {', '.join(f'`{p}`' for p in meta.frozen)}.")
    return " ".join(lines)


def _reproduced(model: nn.Module) -> str | None:
    from zoo.use.reproduce import last

    source = model.zoo_source
    found = last(source.sha256 or file_sha256(source.path))
    if found is None:
        return None
    return (f"The last `zoo reproduce` ({found.when}, torch {found.torch}, {found.cpu}, {found.seconds:.0f} s): "
            f"{found.summary().split(': ', 1)[1]}.")


def _files(model: nn.Module) -> str:
    meta, source = model.zoo_meta, model.zoo_source
    rows = [("weights file", f"`{source.path.name}`")]
    if source.sha256:
        rows.append(("sha256 of the file", f"`{source.sha256}`"))
    rows += [("sha256 of the tensors", f"`{meta.tensors_sha256}`"), ("layout fingerprint", f"`{meta.fingerprint}`")]
    if meta.versions:
        rows += [("zoo", meta.versions.zoo), ("torch", meta.versions.torch)]
        rows += [(f"plugin {name}", f"{p.dist} {p.version}") for name, p in sorted(meta.versions.plugins.items())]
    return _markdown_table(("", ""), rows)


def _markdown_table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
