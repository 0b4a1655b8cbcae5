"""``zoo check`` and ``zoo build``: a recipe checked, then trained, evaluated and saved. Everything else
a run does (console lines, progress bar, metrics.jsonl, checkpoints, plots, the store) is done by
plugins on the lifecycle hooks."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import yaml

from zoo import checkpoint, distributed, runs, schema, weights
from zoo.assembly import Parts, Row, assemble, trace
from zoo.catalog import recipe_path
from zoo.data import input_spec
from zoo.distributed import Context
from zoo.errors import ZooError
from zoo.files import atomic_write_bytes
from zoo.recipe import RecipeError, raise_all
from zoo.registry import Registry, default_registry
from zoo.runs import Run
from zoo.schema import Settings
from zoo.sweep import run_sweep, variants
from zoo.text import table
from zoo.training import Plan, Position, fit

Log = Callable[[str], None]


@dataclass
class Checked:
    """A recipe that passed every check, with its built parts and layer summary."""

    settings: Settings
    parts: Parts
    rows: list[Row]
    total_params: int
    context: Context = Context()


def check(settings: Settings, registry: Registry | None = None, context: Context = Context(),
          weights_follow: bool = False) -> Checked:
    """Build everything the recipe names and run one batch through model and loss (``weights_follow``:
    see :func:`zoo.assembly.assemble`)."""
    device = distributed.device_for(context, settings.train.device)
    parts = assemble(settings, registry or default_registry(), device,
                     lambda n: math.ceil(steps(n, settings, context) / settings.train.accumulate),
                     weights_follow=weights_follow)
    rows, total = trace(parts, settings)
    return Checked(settings, parts, rows, total, context)


def check_all(settings: Settings, registry: Registry | None = None, context: Context = Context()) -> Checked:
    """:func:`check` the recipe and each variant of its sweep: everything ``zoo build`` would refuse
    before training is refused here."""
    checked = check(settings, registry, context)
    for label, _, _, variant in variants(settings) if settings.sweep else ():
        try:
            check(variant, registry, context)
        except RecipeError as exc:
            raise_all([RecipeError(f"sweep variant {label}: {e.reason}", e.mark, e.path)
                       for e in getattr(exc, "errors", [exc])])
    return checked


def summary(checked: Checked) -> str:
    """Each leaf layer with its output shape and parameter count, then the totals."""
    parts, data, context = checked.parts, checked.settings.data, checked.context
    layers = table(("LAYER", "TYPE", "OUTPUT SHAPE", "PARAMS"),
                   [(r.name, r.kind, r.shape, f"{r.params:,}") for r in checked.rows], right=(3,))
    evaluation = f", {len(parts.eval_data):,} evaluation samples ({data.eval_split})" if parts.eval_data else ""
    processes = f" on each of {context.world} processes ({context.backend})" if context.active else ""
    return (f"{layers}\ntotal parameters: {checked.total_params:,}\n"
            f"data: {len(parts.train_data):,} training samples ({data.train_split}){evaluation}; "
            f"{steps(len(parts.train_data), checked.settings, context)} batches of {data.batch_size} per epoch"
            f"{processes}; device {parts.device}" + (f"\n{parts.init.lines()}" if parts.init else ""))


def build(recipe_arg: str, overrides: Sequence[str] = (), out: Path | None = None, resume: bool = False,
          overwrite: bool = False, disable: Collection[str] = (), log: Log = print) -> list[Path]:
    """Train the recipe (each variant, for a sweep) with the plugins in ``disable`` switched off;
    return the run folders.

    A new run never writes into a folder that holds another run: without ``out`` it takes the first
    free one of runs/NAME, runs/NAME-2, ...; an ``out`` that holds a run is refused unless
    ``overwrite``. ``resume`` continues ``out`` (default: the newest runs/NAME-N)."""
    settings = schema.read(recipe_path(recipe_arg), overrides)
    if resume and settings.sweep is not None:
        raise ZooError("--resume is for single runs; a sweep reruns its variants")
    context = distributed.from_environment(settings.train.backend, settings.train.device)
    try:
        if settings.sweep is not None:
            check_all(settings, context=context)  # no variant fails after others have trained
        folder = _folder(settings.name, out, resume, overwrite, context, log)
        try:
            if settings.sweep is None:
                return [train_run(settings, folder, resume=resume, disable=disable, log=log, context=context).folder]
            return run_sweep(settings, folder, partial(train_run, disable=disable, log=log, context=context),
                             default_registry().hooks(disable), log)
        except BaseException:
            if context.is_main and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # refused before anything was written: leave no empty folder behind
            raise
    finally:
        distributed.close(context)


def _folder(name: str, out: Path | None, resume: bool, overwrite: bool, context: Context, log: Log) -> Path:
    """The run folder, chosen by rank 0 and shared with the other processes under torchrun."""
    base = Path("runs") / name
    if resume:
        return Path(out) if out else runs.newest(base)
    if out is not None:
        if runs.holds_run(out) and not overwrite:
            raise ZooError(f"{out} holds an earlier run: --resume continues it, --overwrite replaces it, "
                           "or choose another --out")
        return Path(out)
    if overwrite:
        return base
    folder = runs.claim(base) if context.is_main else None
    folder = Path(context.gather_object(str(folder) if folder else None)[0])
    if folder != base:
        log(f"{base} holds an earlier run: this one writes to {folder}")
    return folder


def train_run(settings: Settings, out: Path, *, context: Context, resume: bool = False, disable: Collection[str] = (),
              log: Log = print, sweep: str | None = None) -> Run:
    """Check, train, evaluate and save one recipe into ``out``. Under torchrun every process trains
    its shard; only rank 0 logs and writes."""
    return _train(settings, out, resume, disable, log if context.is_main else _quiet, sweep, context)


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def _train(settings: Settings, out: Path, resume: bool, disable: Collection[str], log: Log, sweep: str | None,
           context: Context) -> Run:
    registry = default_registry()
    checked = check(settings, registry, context, weights_follow=resume)
    parts, train = checked.parts, settings.train
    log(summary(checked))
    generator = torch.Generator().manual_seed(train.seed)  # the same permutation on every rank
    torch.manual_seed(train.seed + context.rank)  # each rank its own dropout stream
    run = Run(settings, out, parts.model, parts.optimizer, parts.schedule, generator, Position(), context,
              registry.hooks(disable), log, sweep, callbacks=parts.callbacks,
              classes=getattr(parts.eval_data or parts.train_data, "info", {}).get("classes"),
              data_sha256=weights.data_digest(parts.train_data), precision=parts.precision,
              input=input_spec(parts.eval_data or parts.train_data), init=parts.init,
              components=parts.assembler.resolved)
    if resume:
        checkpoint.resume(run)
        log(f"resuming {settings.name} at epoch {run.position.epoch + 1}, batch {run.position.step}")
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "recipe.yaml", yaml.safe_dump(settings.recipe.data, sort_keys=False).encode())
        if parts.init:
            parts.init.save(out)
    plan = Plan(optimizer=parts.optimizer, loss=parts.loss, epochs=train.epochs, batch_size=settings.data.batch_size,
                schedule=parts.schedule, shuffle=settings.data.shuffle, grad_clip=train.grad_clip,
                eval_batch_size=settings.data.eval_batch_size, metrics=parts.metrics, log_every=train.log_every,
                workers=settings.data.workers, prefetch=settings.data.prefetch, transform=parts.transform,
                eval_transform=parts.eval_transform, precision=run.precision, accumulate=train.accumulate)
    run.emit("zoo_run_start")
    forward = distributed.wrap(parts.model, parts.device, context)
    fit(parts.model, parts.train_data, plan, eval_data=parts.eval_data, eval_name=settings.data.eval_split or "eval",
        device=parts.device, generator=generator, position=run.position,
        forward=torch.compile(forward) if train.compile else forward, context=context, events=run)
    forward = None  # release DistributedDataParallel (and its hold on the process group) before teardown
    if run.position.stop:
        log(f"stopped after epoch {run.position.epoch} of {train.epochs}: {run.position.stop}")
    run.emit("zoo_train_end")
    if run.chosen:
        log(f"keeping the weights of epoch {run.chosen['epoch']}: {run.chosen['reason']}")
    if context.active:
        digest = distributed.same_weights(parts.model, context)
        log(f"weights identical on all {context.world} processes (sha256 {digest[:16]}...)")
    run.save_weights(run.weights)
    run.emit("zoo_run_end", metrics=run.metrics, weights=run.weights if context.is_main else None)
    return run


def steps(samples: int, settings: Settings, context: Context) -> int:
    """Batches per epoch on each process (the data is shared out across processes)."""
    return math.ceil(math.ceil(samples / context.world) / settings.data.batch_size)
