"""``zoo check``, ``zoo build`` and ``zoo search``: a recipe checked, then trained, evaluated and saved
(a sweep's or a search's variants as trials of an Optuna study). Everything else a run does (console
lines, progress bar, metrics.jsonl, checkpoints, plots, the store) is done by plugins on the lifecycle
events."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import torch
import yaml

from zoo.assembly import distributed
from zoo.assembly.distributed import Context
from zoo.assembly.assembler import Pins
from zoo.assembly.finetune import Initial
from zoo.assembly.parts import Parts, assemble, model_problems
from zoo.assembly.precision import channels_last
from zoo.errors import ZooError
from zoo.files import atomic_write_bytes, file_sha256
from zoo.recipe.catalog import recipe_path
from zoo.recipe.parse import RecipeError, load, raise_all
from zoo.recipe.schema import Settings, key_paths, validate
from zoo.registry import Registry, default_registry
from zoo.registry.events import Events
from zoo.text import plural, table
from zoo.training import checkpoint
from zoo.training.folders import CHECKPOINT, WEIGHTS, claim, holds_run, newest, numbered
from zoo.training.loop import Interrupted, fit
from zoo.training.run import Purpose, Run
from zoo.training.results import finish_sweep, plots, status
from zoo.training.search import (
    STUDY,
    Worker,
    as_search,
    extremes,
    in_process,
    open_study,
    storage_url,
    trial_listeners,
    under_torchrun,
    variants,
)
from zoo.weights.format import read as read_weights
from zoo.weights.locate import locate

Log = Callable[[str], None]


def read_recipe(recipe_arg: str, registry: Registry, overrides: Sequence[str] = ()) -> Settings:
    """The recipe file (or shipped recipe) ``recipe_arg`` with ``overrides``, validated. When the schema
    refuses it, its model is still built, so that every independent mistake is reported at once."""
    recipe = load(recipe_path(recipe_arg, registry), overrides, known=key_paths())
    try:
        return validate(recipe)
    except RecipeError as exc:
        raise_all([*getattr(exc, "errors", [exc]), *model_problems(recipe, registry)])
        raise  # (raise_all raised: the list holds at least the schema's error)


def check(settings: Settings, registry: Registry, context: Context = Context(), weights_follow: bool = False,
          pins: Pins = Pins()) -> Parts:
    """Build everything the recipe names and check it on one batch (``weights_follow``, ``pins``: see
    :func:`zoo.assembly.parts.assemble`)."""
    return assemble(settings, registry, device=distributed.device_for(context, settings.train.device),
                    context=context, initial=initial(settings, registry), weights_follow=weights_follow, pins=pins)


def initial(settings: Settings, registry: Registry) -> Initial | None:
    """The weights ``train.init`` names, read and verified; errors at that key."""
    name = settings.train.init
    if name is None:
        return None
    try:
        located = locate(name, registry)
        tensors, _ = read_weights(located.path, located.sha256)
    except ZooError as exc:
        raise settings.error(settings.train.path("init"), str(exc)) from None
    return Initial(name, str(located.path), located.sha256 or file_sha256(located.path), tensors)


def check_all(settings: Settings, registry: Registry, context: Context = Context()) -> Parts:
    """:func:`check` the recipe, each variant of its sweep and the smallest and largest variants of
    its search: everything ``zoo build`` or ``zoo search`` would refuse before training is refused here."""
    parts = check(settings, registry, context)
    points = variants(settings) if settings.sweep else extremes(settings) if settings.search else ()
    what = "sweep variant" if settings.sweep else "search variant"
    for variant in points:
        try:
            check(variant.settings, registry, context)
        except RecipeError as exc:
            raise_all([RecipeError(f"{what} {variant.label}: {e.reason}", e.mark, e.path)
                       for e in getattr(exc, "errors", [exc])])
    return parts


def summary(parts: Parts, context: Context = Context()) -> str:
    """Each leaf layer with its output shape and parameter count, then the totals and how it trains."""
    data, count = parts.settings.data, threads(parts.settings, context)
    layers = table(("LAYER", "TYPE", "OUTPUT SHAPE", "PARAMS"),
                   [(r.name, r.kind, r.shape, f"{r.params:,}") for r in parts.layers], right=(3,))
    evaluation = f", {len(parts.eval_data):,} evaluation samples ({data.eval_split})" if parts.eval_data else ""
    strategy = parts.settings.train.strategy.name
    processes = f" on each of {context.world} processes ({context.backend}, {strategy})" if context.active else ""
    numerics = "" if parts.precision.name == "32" else f", precision {parts.precision.name}"
    return (f"{layers}\ntotal parameters: {parts.total_params:,}\n"
            f"data: {len(parts.train_data):,} training samples ({data.train_split}){evaluation}; "
            f"{parts.steps} batches of {data.batch_size} per epoch{processes}; device {parts.device}{numerics}, "
            f"{count} CPU {plural('thread', count)}" + (f"\n{parts.init.lines()}" if parts.init else ""))


def build(recipe_arg: str, overrides: Sequence[str] = (), *, registry: Registry | None = None, out: Path | None = None,
          resume: bool = False, overwrite: bool = False, purpose: Purpose = "build", pins: Pins = Pins(),
          log: Log = print) -> list[Path]:
    """Train the recipe (each variant, for a sweep) with the plugins of ``registry`` (default: the
    installed ones); return the run folders.

    A new run never writes into a folder that holds another run: without ``out`` it takes the first
    free one of runs/NAME, runs/NAME-2, ...; an ``out`` that holds a run is refused unless
    ``overwrite``. ``resume`` continues ``out`` (default: the newest runs/NAME-N). ``purpose`` says what
    the weights are for (a trial under torchrun is a ``search-trial``: see search.py); ``pins`` what the
    component names meant to the file a reproduction trains again."""
    registry = registry or default_registry()
    settings = read_recipe(recipe_arg, registry, overrides)
    if settings.search is not None:
        raise ZooError(f"{settings.recipe.source}: has a search section: run it with zoo search (or train the "
                       "recipe once with --set search=null)")
    context = distributed.from_environment(settings.train.backend, settings.train.device)
    if settings.sweep is not None and context.active:
        raise ZooError("a sweep runs its variants one process each: zoo build without --nproc or torchrun")
    log = log if context.is_main else _quiet
    try:
        if settings.sweep is not None:
            check_all(settings, registry, context)  # no variant fails after others have trained
        if distributed.restarts() and settings.sweep is None:
            folder, resume = _restarted(settings.name, out, context, log)
        else:
            folder = _folder(settings.name, out, resume, overwrite, context, log)
        train = partial(train_run, registry=registry, context=context, log=log, pins=pins)
        try:
            if settings.sweep is None:  # (a search's trial under torchrun reports to its trial: see search.py)
                listeners = trial_listeners(context)
                return [train(settings, folder, resume=resume, listeners=listeners,
                              purpose="search-trial" if listeners else purpose).folder]
            return _sweep(settings, folder, registry, log)
        except BaseException:
            if context.is_main and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # refused before anything was written: leave no empty folder behind
            raise
    finally:
        distributed.close(context)


def _sweep(settings: Settings, folder: Path, registry: Registry, log: Log) -> list[Path]:
    """A sweep: its grid as trials of a study in ``folder`` (a rerun with --resume continues it)."""
    plan = as_search(settings)
    folder.mkdir(parents=True, exist_ok=True)
    study = open_study(settings, plan, storage_url(folder, None))
    train = in_process(partial(train_run, registry=registry, context=Context(), log=log, claimed=False,
                               purpose="sweep-variant"), plan.metric)
    Worker(settings, plan, folder, train, log, grid=True).run(study)
    return finish_sweep(settings, folder, study, Events(registry.hook_plugins()), log)


def search(recipe_arg: str, overrides: Sequence[str] = (), *, registry: Registry | None = None, out: Path | None = None,
           storage: str | None = None, workers: int = 1, worker: int | None = None, nproc: int = 1,
           trials: int | None = None, relaunch: Sequence[str] = (), log: Log = print) -> Path:
    """Run the recipe's search (or its sweep, as a grid) in ``out`` (default runs/NAME-search, or the
    next free one; continued when it holds the study) with ``workers`` processes on ``storage``
    (default: SQLite in ``out``), each trial in this process or, with ``nproc`` > 1, under torchrun;
    ``trials`` overrides ``search.trials``. ``worker``: be the worker of that number (1, 2 ...) the
    command started, and only take trials. ``relaunch`` is the command line's global options, for the
    processes started here. Returns the folder."""
    registry = registry or default_registry()
    if trials is not None:
        overrides = [*overrides, f"search.trials={trials}"]
    settings = read_recipe(recipe_arg, registry, overrides)
    if workers * nproc > 1 and settings.train.threads is None:  # the cores shared out among this machine's processes
        overrides = [*overrides, f"train.threads={max(1, _cores() // (workers * nproc))}"]
        settings = read_recipe(recipe_arg, registry, overrides)
    if settings.search is None and settings.sweep is None:
        raise ZooError(f"{settings.recipe.source}: has no search section (nor a sweep) to run; see docs/search.md")
    plan = as_search(settings)
    folder = Path(out) if out else search_folder(settings.name)
    url = storage_url(folder, storage)
    if worker is None:
        check_all(settings, registry)
        folder.mkdir(parents=True, exist_ok=True)
    study = open_study(settings, plan, url, worker or 0)
    grid = settings.search is None
    train = (under_torchrun(nproc, url, plan, list(relaunch)) if nproc > 1 else
             in_process(partial(train_run, registry=registry, context=Context(), log=log, claimed=False,
                                purpose="sweep-variant" if grid else "search-trial"), plan.metric))
    helpers = [] if worker is not None else [subprocess.Popen(
        [sys.executable, "-m", "zoo", *relaunch, "search", recipe_arg, *(f"--set={s}" for s in overrides),
         f"--out={folder}", f"--storage={url}", f"--nproc={nproc}", f"--worker={number}"], start_new_session=True)
        for number in range(1, workers)]
    try:
        Worker(settings, plan, folder, train, log, grid=grid).run(study)
    except (Interrupted, KeyboardInterrupt):
        for helper in helpers:  # (a session of their own: Ctrl-C reaches this process only) the trials they
            helper.terminate()  # were running fail when their heartbeat goes stale, and a rerun runs them again
        for helper in helpers:
            helper.wait()
        raise SearchInterrupted(study, plan.trials) from None
    finally:
        failed = [p.args for p in helpers if p.wait() != 0]
    if worker is not None:
        return folder
    if failed:
        raise ZooError(f"{len(failed)} of the {workers} search workers failed; rerun the command to continue the study")
    log(status(study))
    if grid:
        finish_sweep(settings, folder, study, Events(registry.hook_plugins()), log)
    else:
        plots(study, folder, log)
        _record_best(settings, plan, study, folder, log)
    return folder


def _record_best(settings: Settings, plan, study, folder: Path, log: Log) -> None:
    """File the best trial's weights in the store as a build of the recipe's name, saying where they came from."""
    from zoo.weights.store import builds, record

    best = study.best_trial
    run = folder / best.user_attrs["run"]
    origin = {"search": str(folder.resolve()), "trial": best.number, "params": best.params}
    said = f"best: trial {best.number}, {plan.metric} {best.value:.4f} ({', '.join(f'{k}={v}' for k, v in best.params.items())})"
    filed = next((b for b in builds(settings.name) if b.origin == origin and b.sha256 == file_sha256(run / WEIGHTS)), None)
    if filed is not None:  # a rerun of a finished search: the same best, already a build
        log(f"{said}; already in the store as {filed.label}")
        return
    log(f"{said}; recorded in the store as {record(settings.name, run / WEIGHTS, origin=origin).label}")


def search_status(recipe_arg: str, overrides: Sequence[str] = (), *, registry: Registry | None = None,
                  out: Path | None = None, storage: str | None = None) -> str:
    """The trials table of the recipe's study."""
    registry = registry or default_registry()
    settings = read_recipe(recipe_arg, registry, overrides)
    plan = as_search(settings)
    folder = Path(out) if out else search_folder(settings.name)
    if storage is None and not (folder / "study.db").is_file():
        raise ZooError(f"no study in {folder}: zoo search {recipe_arg} starts one")
    return status(open_study(settings, plan, storage_url(folder, storage)))


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search between or during trials; rerunning the command continues its study."""

    def __init__(self, study, trials: int):
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False))
        super().__init__(f"search interrupted with {done} of its {trials} trials finished; the same command "
                         "continues the study")


def search_folder(name: str) -> Path:
    """The folder of a recipe's search: runs/NAME-search when it is free or holds the study, else the
    next of runs/NAME-search-2 ... that is."""
    return next(folder for folder in numbered(Path("runs") / f"{name}-search")
                if not folder.exists() or (folder / STUDY).is_file())


def _folder(name: str, out: Path | None, resume: bool, overwrite: bool, context: Context, log: Log) -> Path:
    """The run folder: ``out``, checked, or a free one of runs/NAME-N claimed by rank 0."""
    base = Path("runs") / name
    if resume:
        return Path(out) if out else newest(base)
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ZooError(f"--out {out} is a file, not a folder: choose a folder for the run")
        if holds_run(out) and not overwrite:
            raise ZooError(f"{out} holds an earlier run: --resume continues it, --overwrite replaces it, "
                           "or choose another --out")
        return out
    if overwrite:
        return base
    folder = _claimed(base, context)
    if folder != base:
        log(f"{base} holds an earlier run: this one writes to {folder}")
    return folder


def _restarted(name: str, out: Path | None, context: Context, log: Log) -> tuple[Path, bool]:
    """After torchrun restarted the job (``--max-restarts``): the folder the first attempt wrote into
    (``out``, else the newest runs/NAME-N, as ``--resume`` takes), and whether it holds a checkpoint to
    resume from; a new folder when the first attempt died before it had one."""
    folder = Path(out) if out else newest(Path("runs") / name)
    seen = (str(folder), (folder / CHECKPOINT / checkpoint.STATE).is_file(), holds_run(folder))
    where, saved, taken = context.gather_object(seen if context.is_main else None)[0]  # rank 0's view decides
    if saved:
        log(f"restart {distributed.restarts()} of this job by torchrun: resuming from the checkpoint in {where}")
        return Path(where), True
    if taken:
        return _folder(name, out, False, False, context, log), False
    return Path(where), False


def _claimed(base: Path, context: Context) -> Path:
    """A free folder of ``base`` (base, base-2 ...), created by rank 0 and shared with the others."""
    folder = claim(base) if context.is_main else None
    return Path(context.gather_object(str(folder) if folder else None)[0])


def new_run(settings: Settings, folder: Path, *, registry: Registry, context: Context = Context(),
            resume: bool = False, log: Log = print, sweep: str | None = None, listeners: Sequence = (),
            purpose: Purpose = "build", pins: Pins = Pins()) -> Run:
    """A checked recipe made into a run that writes into ``folder``: its parts built, its shuffles and
    dropout seeded, and with ``resume`` its checkpoint restored; ``listeners`` (Callbacks) hear its
    events besides the recipe's callbacks."""
    parts = check(settings, registry, context, weights_follow=resume, pins=pins)
    generator = torch.Generator().manual_seed(settings.train.seed)  # the same permutation on every rank
    torch.manual_seed(settings.train.seed + context.rank)  # each rank its own dropout stream
    run = Run(settings, parts, folder, context, registry, Events(registry.hook_plugins(), [*parts.callbacks, *listeners]),
              log, generator, sweep=sweep, purpose=purpose)
    if resume:
        checkpoint.resume(run)
    return run


def train_run(settings: Settings, folder: Path, *, registry: Registry, context: Context, resume: bool = False,
              log: Log = print, sweep: str | None = None, claimed: bool = True, listeners: Sequence = (),
              purpose: Purpose = "build", pins: Pins = Pins()) -> Run:
    """Check, train, evaluate and save one recipe into ``folder`` (``claimed``: already chosen; else a
    free folder of that name is claimed). Under torchrun every process trains its shard; only rank 0
    logs and writes."""
    folder = folder if claimed else _claimed(folder, context)
    with _threads(threads(settings, context)):
        run = new_run(settings, folder, registry=registry, context=context, resume=resume, log=log, sweep=sweep,
                      listeners=listeners, purpose=purpose, pins=pins)
        log(summary(run.parts, context))
        if resume:
            log(f"resuming {settings.name} at epoch {run.position.epoch + 1}, batch {run.position.step}")
        if context.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / "recipe.yaml", yaml.safe_dump(settings.recipe.data, sort_keys=False).encode())
            if run.parts.init:
                run.parts.init.save(folder)
        run.emit("zoo_run_start")
        forward = run.strategy.wrap(run.model, run.parts.device, context)
        if settings.train.channels_last:
            forward = channels_last(run.model, forward)
        fit(run, torch.compile(forward) if settings.train.compile else forward)
        forward = None  # release DistributedDataParallel (and its hold on the process group) before teardown
        if run.position.stop:
            log(f"stopped after epoch {run.position.epoch} of {settings.train.epochs}: {run.position.stop}")
        run.emit("zoo_train_end")
        if run.chosen:
            log(f"keeping the weights of epoch {run.chosen.epoch}: {run.chosen.reason}")
        how = run.save_weights(run.weights)
        if how:
            log(how)
        run.emit("zoo_run_end", metrics=run.metrics, weights=run.weights if context.is_main else None)
        checkpoint.remove(run)  # after the plugins filed the weights
    return run


def threads(settings: Settings, context: Context) -> int:
    """The CPU threads each process computes with: ``train.threads``, else the cores shared out among
    this machine's processes under torchrun, else torch's own choice."""
    if settings.train.threads:
        return settings.train.threads
    if context.active:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", context.world))
        return max(1, _cores() // local)
    return torch.get_num_threads()


def _cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""
