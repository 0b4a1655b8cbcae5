"""Commands about recipes and runs: ``zoo check``, ``zoo build`` (also under torchrun, across machines) and
``zoo plot``."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys

from zoo.cli import path, positive
from zoo.registry.hookspecs import hookimpl


def rendezvous(text: str) -> str:
    """An argparse type: HOST:PORT (``[::1]:29500`` for an IPv6 address), as torchrun's c10d endpoint takes it."""
    host, _, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    bare = host[1:-1] if bracketed else host
    if not (port.isdigit() and 1 <= int(port) <= 65535 and re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", bare or "-")
            and bare and (bracketed or ":" not in bare)):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (node 0's address and a port from 1 to 65535; "
                                         f"[::1]:29500 for IPv6), got {text[:60]!r}")
    return text


@hookimpl
def register_commands(register):
    register("check", check, help="validate a recipe without training", arguments=_recipe_arguments,
             description="Validate a recipe: build everything it names, run one batch through it, print each layer.")
    register("build", build, help="validate, train, evaluate and save a recipe", arguments=_build_arguments)
    register("search", search, help="run a recipe's hyperparameter search (or sweep) on Optuna",
             arguments=_search_arguments,
             description="Run the recipe's search section: trials of an Optuna study (TPE, random, grid or CMA-ES "
                         "over the space, pruned through the epoch-end event), each a run folder of its own under "
                         "the search folder, K worker processes here and any number elsewhere on the same "
                         "--storage. Rerunning the command continues the study; --status prints its trials. The "
                         "best trial's weights are recorded in the store. Needs the 'search' extra.")
    register("plot", plot, help="draw a run's loss and metric curves", arguments=_plot_arguments,
             description="Draw the loss and metric curves of a run folder (loss.png) or a sweep folder, one "
                         "curve per variant (sweep.png). Needs matplotlib: the 'plot' extra.")


def _recipe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file, or the name of a recipe that ships with zoo (e.g. mnist-mlp)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, value parsed as YAML (repeatable): --set train.epochs=3")


def _build_arguments(p: argparse.ArgumentParser) -> None:
    _recipe_arguments(p)
    p.add_argument("--out", type=path, help="run folder (default: the first free one of runs/NAME, runs/NAME-2, ...)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's last checkpoint (default folder: the newest runs/NAME-N)")
    p.add_argument("--overwrite", action="store_true", help="write into the run folder even if it holds an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the same as -p no:progress)")
    p.add_argument("--nproc", type=positive, metavar="N",
                   help="train data-parallel in N processes on this machine (relaunches through torchrun)")
    launch = p.add_argument_group("across machines and restarts (through torchrun; docs/distributed.md)")
    launch.add_argument("--nnodes", type=positive, metavar="N",
                        help="machines the job spans; run the same command on each, with its --node-rank")
    launch.add_argument("--node-rank", type=int, default=0, metavar="R",
                        help="this machine's number, 0 to N-1; node 0 hosts the rendezvous (default 0)")
    launch.add_argument("--rdzv", metavar="HOST:PORT", type=rendezvous, help="node 0's address and a free port: the c10d rendezvous")
    launch.add_argument("--max-restarts", type=int, default=0, metavar="K",
                        help="restart the job's processes up to K times when one fails; each restart resumes "
                             "from the latest checkpoint (default 0)")


def _search_arguments(p: argparse.ArgumentParser) -> None:
    _recipe_arguments(p)
    p.add_argument("--out", type=path, help="the search folder (default runs/NAME-search, or the next free one; a "
                                            "rerun continues its study)")
    p.add_argument("--trials", type=positive, metavar="N", help="trials to run (default: the recipe's search.trials)")
    p.add_argument("--workers", type=positive, default=1, metavar="K", help="worker processes on this machine (default 1)")
    p.add_argument("--storage", metavar="URL",
                   help="the study's storage: an RDB URL (postgresql://..., mysql://..., sqlite:///...) or "
                        "journal:PATH; the same URL on another machine joins the study (default: SQLite in the folder)")
    p.add_argument("--nproc", type=positive, default=1, metavar="N",
                   help="train each trial data-parallel in N processes (torchrun); rank 0 talks to the study")
    p.add_argument("--status", action="store_true", help="print the trials table and exit")
    p.add_argument("--worker", type=positive, help=argparse.SUPPRESS)  # the number of a worker a search started


def search(args: argparse.Namespace) -> int:
    from zoo.training.build import SearchInterrupted, search_status
    from zoo.training.build import search as run

    if args.status:
        print(search_status(args.recipe, args.set, registry=args.registry, out=args.out, storage=args.storage))
        return 0
    relaunch = [*(f"-pno:{name}" for name in args.disabled), *(["--strict-plugins"] if args.strict else [])]
    try:
        folder = run(args.recipe, args.set, registry=args.registry, out=args.out, storage=args.storage,
                     workers=args.workers, worker=args.worker, nproc=args.nproc, trials=args.trials,
                     relaunch=relaunch)
    except SearchInterrupted as exc:
        if args.worker is None:  # a worker this command started: the command says it once
            print(f"zoo: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if args.worker is None:
            raise
        return 130  # a worker this command started: the command says it once
    if args.worker is None:
        print(f"search folder: {folder} (zoo search {args.recipe} --status; optuna-dashboard "
              f"{args.storage or f'sqlite:///{folder}/study.db'})")
    return 0


def check(args: argparse.Namespace) -> int:
    from zoo.training.build import check_all, read_recipe, summary
    from zoo.training.search import search_plan

    settings = read_recipe(args.recipe, args.registry, args.set)
    parts = check_all(settings, args.registry)
    print(summary(parts))
    if settings.search is not None:
        print(search_plan(settings))
    print(f"ok: {parts.settings.recipe.source} is a valid recipe")
    return 0


def build(args: argparse.Namespace) -> int:
    from zoo.registry import Registry
    from zoo.training.build import build as train
    from zoo.training.loop import Interrupted

    if args.nproc or args.nnodes or args.max_restarts or args.rdzv:
        return _torchrun(args)
    registry = args.registry
    if args.no_progress and "progress" not in args.disabled:
        registry = Registry.from_environment(disabled=[*args.disabled, "progress"], strict=args.strict)
    try:
        train(args.recipe, args.set, registry=registry, out=args.out, resume=args.resume, overwrite=args.overwrite)
    except Interrupted as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line for the job
            again = ["zoo", *(f"-pno:{name}" for name in args.disabled), "build", args.recipe,
                     *(f"--set={s}" for s in args.set), "--resume", *(["--out", str(args.out)] if args.out else []),
                     *(["--no-progress"] if args.no_progress else [])]
            print(f"zoo: {exc}; checkpoint saved. Continue with: {shlex.join(again)}", file=sys.stderr)
        return 130
    return 0


def _torchrun(args: argparse.Namespace) -> int:
    """``zoo build`` with --nproc, --nnodes or --max-restarts: the same build under torchrun's elastic
    agent, run in this process, so that a failure ends in one line naming the rank and the cause."""
    import signal

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from zoo.errors import ZooError

    nproc, nnodes = args.nproc or 1, args.nnodes or 1
    if args.max_restarts < 0:
        raise ZooError(f"--max-restarts must be 0 or more, got {args.max_restarts}")
    if not 0 <= args.node_rank < nnodes:
        raise ZooError(f"--node-rank {args.node_rank} is not one of the {nnodes} nodes' numbers, 0 to {nnodes - 1}")
    if nnodes > 1 and not args.rdzv:
        raise ZooError(f"--nnodes {nnodes} needs --rdzv HOST:PORT: node 0's address and a free port, the same on "
                       "every node")
    if nnodes > 1 or args.rdzv:
        host = "true" if args.node_rank == 0 else "false"
        where = ["--rdzv-backend=c10d", f"--rdzv-endpoint={args.rdzv}", "--rdzv-id=zoo", f"--rdzv-conf=is_host={host}",
                 f"--node-rank={args.node_rank}"]
    else:
        where = ["--standalone"]
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // nproc)))
    # The workers' process group gets a TCP store of its own: on the rendezvous's shared one, restarted
    # workers read the addresses of the previous attempt's and fail to connect (pytorch issue 135712).
    os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    command = [f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", f"--max-restarts={args.max_restarts}", *where,
               "-m", "zoo", *(f"-pno:{name}" for name in args.disabled), *(["--strict-plugins"] if args.strict else []),
               "build", args.recipe, *(f"--set={s}" for s in args.set)]
    command += [f"--out={args.out}"] if args.out else []
    command += ["--resume"] if args.resume else []
    command += ["--overwrite"] if args.overwrite else []
    command += ["--no-progress"] if args.no_progress else []
    try:
        run(parse_args(command))
    except ChildFailedError as exc:
        # the cause: a process killed by a signal other than the agent's SIGTERM, else the first to fail
        rank, failure = min(exc.failures.items(), key=lambda item: (item[1].exitcode in (1, -signal.SIGTERM),
                                                                   item[1].timestamp))
        cause = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else
                 f"exited with status {failure.exitcode}")
        after = f" after {args.max_restarts} restart(s) (--max-restarts)" if args.max_restarts else ""
        print(f"zoo: error: rank {rank} (pid {failure.pid}) {cause}; the job stopped{after}. Its last checkpoint "
              "is in the run folder: the same command with --resume continues it", file=sys.stderr)
        return 1
    except SignalException as exc:  # Ctrl-C or a SIGTERM to this process: torchrun stopped the workers
        print(f"zoo: {exc.sigval.name} stopped the job; the last checkpoint is in the run folder: the same command "
              "with --resume continues it", file=sys.stderr)
        return 128 + exc.sigval.value
    return 0


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=path, help="run or sweep folder written by zoo build (e.g. runs/mnist-mlp)")
    p.add_argument("--out", type=path, help="PNG to write (default: loss.png or sweep.png in the folder)")


def plot(args: argparse.Namespace) -> int:
    from zoo import plots
    from zoo.training import folders

    plots.require("zoo plot")
    print(f"wrote {folders.plot(args.run, args.out)}")
    return 0
