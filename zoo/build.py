"""``zoo check`` and ``zoo build``: a recipe validated, trained, evaluated, saved and recorded."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

import zoo
from zoo import checkpoint, distributed, plots, runs, store, weights
from zoo.assembly import Parts, Row, assemble, build_optimizer, trace
from zoo.catalog import recipe_path
from zoo.distributed import Context
from zoo.errors import ZooError
from zoo.files import atomic_write_bytes
from zoo.recipe import Recipe, RecipeError, load
from zoo.registry import Registry, default_registry
from zoo.schema import Settings, validate
from zoo.training import Plan, Position, fit

Log = Callable[[str], None]


@dataclass
class Checked:
    """A recipe that passed every check, with its built parts and layer summary."""

    recipe: Recipe
    settings: Settings
    parts: Parts
    rows: list[Row]
    total_params: int
    context: Context = Context()


def check(recipe: Recipe, registry: Registry | None = None, context: Context = Context()) -> Checked:
    """Validate the recipe, build everything it names, and run one batch through model and loss."""
    settings = validate(recipe)
    device = distributed.device_for(context, settings.train.device)
    parts = assemble(recipe, settings, registry or default_registry(), device)
    build_optimizer(parts, total_steps=_steps(parts, settings, context) * settings.train.epochs)
    rows, total = trace(parts, settings.data.batch_size)
    return Checked(recipe, settings, parts, rows, total, context)


def summary(checked: Checked) -> str:
    """Each leaf layer with its output shape and parameter count, then the totals."""
    rows = [("LAYER", "TYPE", "OUTPUT SHAPE", "PARAMS")]
    rows += [(r.name, r.kind, r.shape, f"{r.params:,}") for r in checked.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    parts, settings = checked.parts, checked.settings
    lines.append(f"total parameters: {checked.total_params:,}")
    lines.append(
        f"data: {len(parts.train_data):,} training samples ({settings.data.train_split})"
        + (f", {len(parts.eval_data):,} evaluation samples ({settings.data.eval_split})" if parts.eval_data else "")
        + f"; {_steps(parts, settings, checked.context)} batches of {settings.data.batch_size} per epoch"
        + (f" on each of {checked.context.world} processes ({checked.context.backend})" if checked.context.active else "")
        + f"; device {parts.device}"
    )
    return "\n".join(lines)


def build(
    recipe_arg: str,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Log = print,
) -> list[Path]:
    """Train the recipe (each variant, for a sweep); return the run folders."""
    recipe = load(recipe_path(recipe_arg), overrides)
    settings = validate(recipe)
    out = Path(out) if out else Path("runs") / settings.name
    if settings.sweep is not None:
        if resume:
            raise ZooError("--resume is for single runs; a sweep reruns its variants")
        return run_sweep(recipe, settings, out, progress, log)
    return [train_run(recipe, out, resume=resume, progress=progress, log=log)]


def train_run(recipe: Recipe, out: Path, *, resume: bool = False, progress: bool = True,
              log: Log = print, record: bool = True) -> Path:
    """Check, train and evaluate one recipe into ``out``; record it in the store unless told not to.

    Under torchrun every process trains its shard; only rank 0 logs and writes.
    """
    settings = validate(recipe)
    context = distributed.from_environment(settings.train.backend, settings.train.device)
    try:
        return _train(recipe, out, resume, progress and context.is_main, log if context.is_main else _quiet,
                      record, context)
    finally:
        distributed.close(context)


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def _train(recipe: Recipe, out: Path, resume: bool, progress: bool, log: Log, record: bool, context: Context) -> Path:
    checked = check(recipe, context=context)
    settings, parts = checked.settings, checked.parts
    log(summary(checked))
    total_steps = _steps(parts, settings, context) * settings.train.epochs
    optimizer, schedule = build_optimizer(parts, total_steps)
    train = settings.train
    plan = Plan(
        optimizer=optimizer, loss=parts.loss, epochs=train.epochs, batch_size=settings.data.batch_size,
        schedule=schedule, shuffle=settings.data.shuffle, grad_clip=train.grad_clip,
        eval_batch_size=settings.data.eval_batch_size, metrics=settings.metrics, log_every=train.log_every,
        progress=progress,
    )
    generator = torch.Generator().manual_seed(train.seed)  # the same permutation on every rank
    torch.manual_seed(train.seed + context.rank)  # each rank its own dropout stream
    recipe_id = _recipe_hash(recipe)
    ckpt = out / "checkpoint.safetensors"
    position = None
    if resume:
        if not ckpt.is_file():
            raise ZooError(f"nothing to resume: no checkpoint in {out}; run without --resume")
        state = checkpoint.load(ckpt, recipe_id)
        position = _restore(state, parts.model, optimizer, schedule, generator, context)
        log(f"resuming {settings.name} at epoch {position.epoch + 1}, batch {position.step}")
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "recipe.yaml", yaml.safe_dump(recipe.data, sort_keys=False).encode())

    def save(pos: Position) -> None:
        rng = context.gather(torch.get_rng_state())  # a collective: every rank calls it
        if context.is_main:
            checkpoint.save(ckpt, _snapshot(parts.model, optimizer, schedule, generator, pos, rng), recipe_id)

    def on_epoch(pos: Position) -> None:
        save(pos)
        if context.is_main:
            runs.write_history(out, pos.history)

    forward = parts.model
    if context.active:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(parts.model, device_ids=[parts.device] if parts.device.type == "cuda" else None)
    if train.compile:
        forward = torch.compile(forward)
    history = fit(parts.model, parts.train_data, plan, eval_data=parts.eval_data,
                  eval_name=settings.data.eval_split or "eval", device=parts.device, generator=generator,
                  position=position, forward=forward, context=context, on_epoch=on_epoch, on_interrupt=save, log=log)
    forward = None  # release DistributedDataParallel (and its hold on the process group) before teardown
    _check_ranks_agree(parts.model, context, log)
    if not context.is_main:
        return out
    metrics = _final_metrics(history)
    weights.save(parts.model, out / "weights.safetensors", _metadata(recipe, settings, parts, metrics, context))
    _plot(out, log)
    ckpt.unlink(missing_ok=True)
    if record:
        stored = store.record(settings.name, out / "weights.safetensors")
        log(f"recorded {settings.name} in the store: {stored}")
    log(f"wrote {out / 'weights.safetensors'}  " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return out


def _check_ranks_agree(model: torch.nn.Module, context: Context, log: Log) -> None:
    """Under torchrun, every rank must end with the same weights; say so, or fail."""
    if not context.active:
        return
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    digests = context.gather_object(weights.content_digest(state))
    if len(set(digests)) != 1:
        raise ZooError(f"the {context.world} processes ended with different weights: {digests}")
    log(f"weights identical on all {context.world} processes (sha256 {digests[0][:16]}...)")


def run_sweep(recipe: Recipe, settings: Settings, out: Path, progress: bool, log: Log) -> list[Path]:
    """Train every combination of the sweep's values; one plot and one table for all of them."""
    keys = list(settings.sweep)
    for key in keys:
        if not isinstance(settings.sweep[key], list) or not settings.sweep[key]:
            raise recipe.error(("sweep", key), "a sweep key takes a non-empty list of values")
    folders, variants, table = [], [], []
    for combo in itertools.product(*(settings.sweep[k] for k in keys)):
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combo))
        slug = "-".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in zip(keys, combo)).replace("_", "-")
        try:
            variant = recipe.with_overrides(zip(keys, combo))
        except RecipeError as exc:
            raise recipe.error(("sweep",), f"sweep {label}: {exc.reason}") from None
        del variant.data["sweep"]
        log(f"--- {settings.name}: {label}")
        folder = train_run(variant, out / slug, progress=progress, log=log, record=False)
        folders.append(folder)
        variants.append({"label": label, "run": slug, "values": dict(zip(keys, combo))})
        table.append({**dict(zip(keys, combo)), **_final_metrics(runs.read_history(folder))})
    runs.write_sweep(out, settings.name, variants)
    _write_table(out / "sweep.csv", table)
    log(_format_table(table))
    _plot(out, log)
    log(f"wrote {out / 'sweep.csv'}")
    return folders


def _plot(folder: Path, log: Log) -> None:
    drawn = runs.plot(folder)
    log(f"wrote {drawn}" if drawn else f"no plot: {plots.INSTALL_HINT}")


def _steps(parts: Parts, settings: Settings, context: Context) -> int:
    """Batches per epoch on each process (the data is shared out across processes)."""
    return math.ceil(math.ceil(len(parts.train_data) / context.world) / settings.data.batch_size)


def _final_metrics(history: list[dict]) -> dict[str, float]:
    return {k: v for k, v in history[-1].items() if k not in ("epoch", "seconds")}


def _recipe_hash(recipe: Recipe) -> str:
    return hashlib.sha256(json.dumps(recipe.data, sort_keys=True, default=str).encode()).hexdigest()


def _data_hash(data: object) -> str | None:
    if not hasattr(data, "tensors"):
        return None
    digest = hashlib.sha256()
    for tensor in data.tensors():
        digest.update(tensor.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _metadata(recipe: Recipe, settings: Settings, parts: Parts, metrics: dict, context: Context) -> dict:
    registry = default_registry()
    return {
        "name": settings.name,
        "model": recipe.data["model"],
        "recipe": recipe.data,
        "metrics": metrics,
        "evaluation": {"dataset": recipe.data["data"]["dataset"], "split": settings.data.eval_split},
        "seed": settings.train.seed,
        "processes": context.world,
        "data_sha256": _data_hash(parts.train_data),
        "versions": {
            "zoo": zoo.__version__,
            "torch": torch.__version__,
            "plugins": {p.name: f"{p.dist} {p.version}".strip() for p in registry.plugins if p.status == "loaded"},
        },
    }


def _snapshot(model, optimizer, schedule, generator: torch.Generator, position: Position,
              rng: list[torch.Tensor]) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict() if schedule is not None else None,
        "rng": rng,  # one per process
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": generator.get_state(),
        "position": {
            "epoch": position.epoch, "step": position.step, "shuffle_state": position.shuffle_state,
            "loss_sum": position.loss_sum, "seen": position.seen, "history": position.history,
        },
    }


def _restore(state: dict, model, optimizer, schedule, generator: torch.Generator, context: Context) -> Position:
    if len(state["rng"]) != context.world:
        raise ZooError(f"the checkpoint was written by {len(state['rng'])} process(es), this run has "
                       f"{context.world}; resume with the same number")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if schedule is not None and state["schedule"] is not None:
        schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"][context.rank])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    generator.set_state(state["shuffle"])
    return Position(**state["position"])


def _write_table(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def _format_table(rows: list[dict]) -> str:
    header = list(rows[0])
    cells = [header] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells)
