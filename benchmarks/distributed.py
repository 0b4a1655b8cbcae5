"""Training past one process, measured on 2 CPU processes (gloo):

- memory: the transformer encoder (dim 512, 8 layers, AdamW) trained the same few steps under
  ``train.strategy`` ddp and fsdp; per rank, the bytes of the parameters, gradients and optimizer
  state each process holds (a shard's under fsdp), the time per step, and the difference between
  the two runs' losses at each step (the optimizer's ``foreach`` kernel in both: fused Adam, zoo's
  default under ddp, has no sharded kernel, and Adam magnifies the two kernels' last-bit differences).
- elastic: mnist-mlp for 2 epochs of 100 steps per process, rank 1 SIGKILLed at step 170 under
  torchrun --max-restarts 1; the steps recomputed after the restart with checkpoints every 50 steps
  (``train.checkpoint_every``) and with per-epoch checkpoints only.

    python benchmarks/distributed.py [--dim 512] [--layers 8] [--steps 8]

Last line: ``distributed: fsdp/ddp bytes per rank X.XX, loss diff X.Xe-XX``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KILL_AT = 170  # the global optimizer step at which rank 1 dies


def encoder(dim: int, layers: int, steps: int, strategy: str) -> dict:
    batch, seq = 8, 32
    return {"name": "encoder-memory",
            "model": {"component": "sequential", "layers": [
                {"component": "transformer-encoder", "vocab_size": 16, "max_len": seq, "dim": dim, "heads": 8,
                 "layers": layers, "scale": 4, "dropout": 0.0, "position_dropout": 0.0},
                {"component": "linear", "in_features": dim, "out_features": 16}]},
            "data": {"dataset": {"component": "random-tokens", "n": 2 * batch * steps, "seq_len": seq,
                                 "vocab_size": 16, "min_len": 4, "task": "reverse"},
                     "batch_size": batch, "eval_split": None},
            "train": {"epochs": 1, "seed": 0, "threads": 1, "strategy": strategy, "log_every": 1,
                      "optimizer": {"component": "adamw", "lr": 1.0e-4, "fused": False}, "loss": "cross-entropy"}}


def mlp(every: int | None) -> dict:
    return {"name": "elastic-mlp", "model": {"component": "mnist-mlp", "hidden": [64]},
            "data": {"dataset": {"component": "mnist"}, "batch_size": 25, "eval_batch_size": 5000},
            "train": {"epochs": 2, "seed": 0, "threads": 1, "checkpoint_every": every,
                      "optimizer": {"component": "adam", "lr": 1.0e-3}, "loss": "cross-entropy"},
            "metrics": ["accuracy"]}


def local_bytes(tensors) -> int:
    total = 0
    for t in tensors:
        t = t.to_local() if hasattr(t, "to_local") else t
        total += t.numel() * t.element_size()
    return total


class Measure:
    """The bytes this process holds in parameters, gradients and optimizer state, just before each
    optimizer step (the gradients whole, the state from the steps before); the largest seen."""

    def __init__(self):
        self.peak = {"parameters": 0, "gradients": 0, "optimizer": 0}
        self.losses: list[float] = []

    def zoo_before_optimizer_step(self, run, optimizer):
        parameters = list(run.model.parameters())
        state = [v for s in optimizer.state.values() for v in s.values() if hasattr(v, "numel")]
        now = {"parameters": local_bytes(parameters),
               "gradients": local_bytes(p.grad for p in parameters if p.grad is not None),
               "optimizer": local_bytes(state)}
        self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}

    def zoo_train_step(self, run, loss):
        self.losses.append(float(loss))


class Killer:
    """SIGKILL rank 1 at global optimizer step KILL_AT of the first attempt."""

    def zoo_train_step(self, run, epoch, step):
        if run.context.rank == 1 and (epoch - 1) * run.parts.steps + step == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


class Resumed:
    """The global step a restarted run resumed from."""

    step = None

    def zoo_run_start(self, run):
        self.step = run.position.epoch * run.parts.steps + run.position.step


def worker(args: argparse.Namespace) -> None:
    """One process of a torchrun job of this benchmark."""
    import torch

    import zoo
    from zoo.assembly import distributed
    from zoo.recipe.parse import Recipe
    from zoo.recipe.schema import validate
    from zoo.registry.events import Callback
    from zoo.training.build import new_run, train_run
    from zoo.training.loop import fit

    out = Path(args.out)
    context = distributed.from_environment()
    registry = zoo.default_registry()
    torch.set_num_threads(1)
    results = {}
    if args.worker == "memory":
        for strategy in ("ddp", "fsdp"):
            measure = Measure()
            settings = validate(Recipe(encoder(args.dim, args.layers, args.steps, strategy), {}, Path("recipe.yaml")))
            run = new_run(settings, out / strategy, registry=registry, context=context,
                          listeners=[Callback("measure", "benchmark", measure)])
            started = time.perf_counter()
            fit(run, run.strategy.wrap(run.model, run.parts.device, context))
            seconds = time.perf_counter() - started
            results[strategy] = {**measure.peak, "losses": measure.losses, "seconds_per_step": seconds / args.steps}
    else:
        every = None if args.every == 0 else args.every
        settings = validate(Recipe(mlp(every), {}, Path("recipe.yaml")))
        restarted = distributed.restarts() > 0
        resumed = Resumed()
        listener = Callback("resumed", "benchmark", resumed) if restarted else Callback("killer", "benchmark", Killer())
        run = train_run(settings, out / f"every-{args.every}", registry=registry, context=context, resume=restarted,
                        log=lambda _: None, listeners=[listener])
        results = {"restarted": restarted, "resumed": resumed.step,
                   "digest": run.strategy.weights(run.model, context)[1]}
    (out / f"{args.worker}-{args.every}-rank{context.rank}.json").write_text(json.dumps(results))
    distributed.close(context)
    os._exit(0)


def torchrun(args: argparse.Namespace, out: Path, job: str, every: int = 0, restarts: int = 0) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               f"--max-restarts={restarts}", __file__, "--worker", job, "--out", str(out), "--every", str(every),
               "--dim", str(args.dim), "--layers", str(args.layers), "--steps", str(args.steps)]
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"the {job} job failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of the memory runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--every", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        os.environ["ZOO_HOME"] = str(out / "home")
        torchrun(args, out, "memory")
        ranks = [json.loads((out / f"memory-0-rank{r}.json").read_text()) for r in (0, 1)]
        print(f"encoder dim {args.dim}, {args.layers} layers, AdamW, {args.steps} steps of 8 sequences per process, "
              "2 processes (gloo):")
        for strategy in ("ddp", "fsdp"):
            for rank, result in enumerate(ranks):
                r = result[strategy]
                held = r["parameters"] + r["gradients"] + r["optimizer"]
                print(f"  {strategy:4} rank {rank}: parameters {r['parameters'] / 2**20:7.1f} MiB, gradients "
                      f"{r['gradients'] / 2**20:7.1f} MiB, optimizer {r['optimizer'] / 2**20:7.1f} MiB, total "
                      f"{held / 2**20:7.1f} MiB; {r['seconds_per_step']:.3f} s/step")
        held = {s: max(r[s]["parameters"] + r[s]["gradients"] + r[s]["optimizer"] for r in ranks)
                for s in ("ddp", "fsdp")}
        diff = max(abs(a - b) for r in ranks for a, b in zip(r["ddp"]["losses"], r["fsdp"]["losses"], strict=True))
        print(f"  losses of the {args.steps} steps, ddp: {', '.join(f'{v:.6f}' for v in ranks[0]['ddp']['losses'])}")
        steps = [max(abs(r["ddp"]["losses"][i] - r["fsdp"]["losses"][i]) for r in ranks) for i in range(args.steps)]
        print(f"  difference fsdp - ddp at each step: {', '.join(f'{v:.1e}' for v in steps)}")

        print(f"elastic: mnist-mlp, 2 epochs x 100 steps per process, rank 1 SIGKILLed at step {KILL_AT}, "
              "--max-restarts 1:")
        for every in (50, 0):
            started = time.perf_counter()
            torchrun(args, out, "elastic", every, restarts=1)
            seconds = time.perf_counter() - started
            log = [json.loads((out / f"elastic-{every}-rank{r}.json").read_text()) for r in (0, 1)]
            assert all(r["restarted"] for r in log), "the job was not restarted"
            resumed = log[0]["resumed"]
            what = f"checkpoint_every {every}" if every else "per-epoch checkpoints"
            print(f"  {what:22}: resumed at step {resumed}, {KILL_AT - resumed} steps recomputed, "
                  f"{seconds:.1f} s in all ({log[0]['digest']})")
        print(f"distributed: fsdp/ddp bytes per rank {held['fsdp'] / held['ddp']:.2f}, loss diff {diff:.1e}")


if __name__ == "__main__":
    main()
