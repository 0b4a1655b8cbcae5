"""``zoo card``: a Markdown model card made of the facts a weights file records (and, for a catalog
model, the catalog's and a fresh ``zoo verify``). A section without facts is left out: nothing is
guessed and no placeholder is written."""

from __future__ import annotations

from pathlib import Path

import yaml
from torch import nn

from zoo import catalog


def card(model: nn.Module, *, verify: bool = True) -> str:
    """The model card of ``model`` (from ``zoo.load``); ``verify`` re-scores a catalog model."""
    meta = model.zoo_meta
    entry = _entry(meta)
    params = sum(p.numel() for p in model.parameters())
    recipe = meta.get("recipe", {})
    parts = [f"# {meta['name']}"]
    summary = entry.summary if entry else recipe.get("description")
    if summary:
        parts.append(summary)
    parts.append(_section("Architecture", f"{type(model).__name__}, {params:,} parameters, built from this "
                                          f"component node:\n\n{_yaml(meta['model'])}"))
    parts.append(_section("Metrics", _metrics(meta, entry, model if verify else None)))
    parts.append(_section("Input and labels", _input(meta)))
    parts.append(_section("Training", _training(meta)))
    if meta.get("init"):
        parts.append(_section("Fine-tuned from", _init(meta)))
    if entry and entry.license:
        parts.append(_section("License", entry.license))
    parts.append(_section("Files and versions", _files(meta)))
    if recipe:
        parts.append(_section("Recipe", "The resolved recipe the weights were trained with:\n\n" + _yaml(recipe)))
    return "\n\n".join(p for p in parts if p) + "\n"


def _entry(meta: dict) -> catalog.Entry | None:
    """The catalog entry whose shipped weights these are."""
    if meta.get("source") != "catalog":
        return None
    return next((e for e in catalog.entries().values() if e.weights_path and str(e.weights_path) == meta["path"]), None)


def _section(title: str, body: str | None) -> str | None:
    return f"## {title}\n\n{body}" if body else None


def _yaml(data: object) -> str:
    return "```yaml\n" + yaml.safe_dump(data, sort_keys=False).rstrip() + "\n```"


def _metrics(meta: dict, entry: catalog.Entry | None, model: nn.Module | None) -> str | None:
    lines = []
    evaluation = meta.get("evaluation", {})
    scores = {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))}
    if scores:
        epoch = f"after epoch {meta['epoch']}" if meta.get("epoch") else "after the last epoch"
        split = evaluation.get("split")
        where = f" on the {split} split of {_name(evaluation.get('dataset'))}" if split else ""
        lines.append(f"Recorded by `zoo build` {epoch}{where} (train_loss: the mean over that epoch's "
                     "training batches):\n")
        lines.append(_markdown_table(("metric", "value"), [(k, f"{v:.4f}") for k, v in sorted(scores.items())]))
    if entry and entry.metrics:
        rows = [(m.metric, f"{m.dataset} {m.split}", f"{m.value:.4f}") for m in entry.metrics]
        headers = ("metric", "data", "catalog")
        if model is not None:
            from zoo.verify import TOLERANCE, verify

            checks = verify(entry.name)
            rows = [(*row, f"{c.measured:.4f}", "ok" if c.ok else "MISMATCH") for row, c in zip(rows, checks)]
            headers += ("measured now (zoo verify)", f"within {TOLERANCE:g}")
        lines.append("\nThe catalog's figures" + (", re-measured by `zoo verify` for this card:\n"
                                                   if model is not None else ":\n"))
        lines.append(_markdown_table(headers, rows))
    return "\n".join(lines) or None


def _name(dataset: object) -> str:
    return f"`{dataset['component']}`" if isinstance(dataset, dict) else f"`{dataset}`"


def _input(meta: dict) -> str | None:
    spec, classes = meta.get("input"), meta.get("classes")
    lines = []
    if spec:
        shape = " x ".join(map(str, spec["shape"]))
        if spec["kind"] == "image":
            low, high = spec.get("range", [0.0, 1.0])
            mode = {"L": "grey", "RGB": "colour (RGB)"}.get(spec.get("mode"), "")
            lines.append(f"One input: a {mode} image as {spec['dtype']} {shape} with values in "
                         f"[{low}, {high}] (8-bit pixels / 255); batches add a first dimension.")
        elif spec["kind"] == "tokens":
            lines.append(f"One input: {spec['shape'][0]} token ids ({spec['dtype']}) in 0..{spec['vocab_size'] - 1}, "
                         f"padded with {spec.get('pad_id', 0)}; batches add a first dimension.")
        else:
            lines.append(f"One input: a {spec['dtype']} tensor of shape {shape}; batches add a first dimension.")
    transforms = meta.get("recipe", {}).get("data", {}).get("eval_transform",
                                                             meta.get("recipe", {}).get("data", {}).get("transform"))
    if transforms:
        lines.append(f"Before the model, the recipe's evaluation transforms: {_yaml(transforms)}")
    if classes:
        lines.append(f"Labels ({len(classes)}): " + ", ".join(f"{i} `{c}`" for i, c in enumerate(classes)) + ".")
    if lines:
        lines.append("`zoo predict` and `zoo.predict` take raw input and apply all of this.")
    return "\n\n".join(lines) or None


def _training(meta: dict) -> str | None:
    recipe = meta.get("recipe", {})
    train, data = recipe.get("train", {}), recipe.get("data", {})
    rows = []
    if data.get("dataset") is not None:
        rows.append(("data", f"{_name(data['dataset'])}, split `{data.get('train_split', 'train')}`"))
    if meta.get("data_sha256"):
        rows.append(("training data sha256", f"`{meta['data_sha256']}`"))
    for key in ("epochs", "seed", "precision", "accumulate"):
        if key in train:
            rows.append((key, str(train[key])))
    for key in ("optimizer", "loss", "schedule"):
        node = train.get(key)
        if isinstance(node, dict):
            options = ", ".join(f"{k} {v}" for k, v in node.items() if k != "component")
            rows.append((key, f"{node['component']}" + (f" ({options})" if options else "")))
        elif isinstance(node, str):
            rows.append((key, node))
    if meta.get("processes", 1) > 1:
        rows.append(("processes", f"{meta['processes']} (torchrun)"))
    if meta.get("stopped"):
        rows.append(("stopped early", f"after epoch {meta['stopped']['after_epoch']}: {meta['stopped']['reason']}"))
    if meta.get("chosen"):
        rows.append(("weights kept", f"epoch {meta['chosen']['epoch']}: {meta['chosen']['reason']}"))
    return _markdown_table(("fact", "value"), rows) if rows else None


def _init(meta: dict) -> str:
    init = meta["init"]
    lines = [f"Started from `{init['source']}` (sha256 `{init['sha256']}`): {init['loaded']} tensors loaded."]
    for key, what in (("missing", "kept their initialisation (not in that file)"),
                      ("unexpected", "were in that file but not the model")):
        if init.get(key):
            lines.append(f"{', '.join(f'`{k}`' for k in init[key])} {what}.")
    if init.get("mismatched"):
        lines.append("Skipped for their shape (a new head): " + ", ".join(
            f"`{k}` (model {tuple(a)}, file {tuple(b)})" for k, a, b in init["mismatched"]) + ".")
    if meta.get("frozen"):
        lines.append(f"Frozen during fine-tuning: {', '.join(f'`{p}`' for p in meta['frozen'])}.")
    return " ".join(lines)


def _files(meta: dict) -> str:
    rows = [("weights file", f"`{Path(meta['path']).name}`")]
    if meta.get("sha256"):
        rows.append(("sha256 of the file", f"`{meta['sha256']}`"))
    rows += [("sha256 of the tensors", f"`{meta['tensors_sha256']}`"), ("layout fingerprint", f"`{meta['fingerprint']}`")]
    versions = meta.get("versions", {})
    rows += [(name, versions[name]) for name in ("zoo", "torch") if name in versions]
    rows += [(f"plugin {name}", version) for name, version in sorted(versions.get("plugins", {}).items())]
    return _markdown_table(("", ""), rows)


def _markdown_table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
