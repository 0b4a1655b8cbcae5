"""zoo build under torchrun: data-parallel on CPU (gloo, loopback), resume, and a crashing rank."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SMALL_MLP, raw_meta, run_zoo, wait_for, write_recipe
from safetensors.torch import load_file

from zoo.weights.format import read_meta

def recipe(tmp_path: Path, epochs: int = 3, batch: int = 50) -> Path:
    return write_recipe(tmp_path, SMALL_MLP, epochs=epochs, batch=batch)


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "zoo", "build", *args, "--no-progress"]


def final(out: Path) -> dict:
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def test_nproc_relaunches_through_torchrun_and_two_processes_train_one_model(tmp_path):
    path = recipe(tmp_path)
    (tmp_path / "runs" / "small-mlp").mkdir(parents=True)
    (tmp_path / "runs" / "small-mlp" / "metrics.jsonl").write_text("{}\n")  # an earlier run: this one takes -2
    result = run_zoo("build", str(path), "--nproc", "2", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out, ddp = result.stdout, tmp_path / "runs" / "small-mlp-2"
    assert "50 batches of 50 per epoch on each of 2 processes (gloo)" in out
    shared = max(1, len(os.sched_getaffinity(0)) // 2)  # the cores shared out among the 2 processes
    assert re.search(rf"device cpu, {shared} CPU threads?$", out, re.M)
    assert "weights identical on all 2 processes" in out
    assert out.count("epoch 3/3") == 1 and out.count("holds an earlier run") == 1  # only rank 0 logs
    assert sorted(p.name for p in ddp.iterdir()) == ["loss.png", "metrics.jsonl", "recipe.yaml", "weights.safetensors"]
    assert read_meta(ddp / "weights.safetensors").processes == 2
    single = run_zoo("build", str(path), "--out", str(tmp_path / "single"), "--no-progress")
    assert single.returncode == 0, single.stderr
    ddp_accuracy, single_accuracy = final(ddp)["test_accuracy"], final(tmp_path / "single")["test_accuracy"]
    assert ddp_accuracy > 0.85 and abs(ddp_accuracy - single_accuracy) < 0.03


def _rank_pids(parent: int) -> dict[int, int]:
    """rank -> pid of the workers under a torchrun process."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        rank = next((e[5:] for e in environ if e.startswith(b"RANK=")), None)
        if ppid == parent and rank is not None:
            found[int(rank)] = int(proc.name)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pids, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers still running"
        time.sleep(0.05)


def test_a_crashing_rank_ends_the_run_with_an_error_and_the_checkpoint_stays_intact(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(torchrun(str(recipe(tmp_path, epochs=40, batch=10)), "--out", str(out)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "checkpoint.safetensors", process)
    ranks = _rank_pids(process.pid)
    assert set(ranks) == {0, 1}
    os.kill(ranks[1], signal.SIGKILL)
    started = time.monotonic()
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    assert time.monotonic() - started < 60, "the surviving rank hung"
    assert "ChildFailedError" in err or "failed" in err.lower()
    assert "SIGKILL" in err or "Signal 9" in err
    from zoo.training.checkpoint import load

    state = load_file(str(out / "checkpoint.safetensors"))
    assert state and raw_meta(out / "checkpoint.safetensors")["format"] == "zoo-checkpoint/1"
    recorded = raw_meta(out / "checkpoint.safetensors")["fingerprint"]
    assert load(out / "checkpoint.safetensors", recorded)["position"]["epoch"] >= 1  # whole: its digest checks
    assert not (out / "weights.safetensors").exists()


def test_resume_under_torchrun_reaches_the_weights_of_an_uninterrupted_run(tmp_path):
    path = recipe(tmp_path, epochs=4, batch=25)
    reference = subprocess.run(torchrun(str(path), "--out", str(tmp_path / "reference")), capture_output=True,
                               text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "run"
    process = subprocess.Popen(torchrun(str(path), "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(out / "checkpoint.safetensors", process)
    workers = _rank_pids(process.pid)
    assert set(workers) == {0, 1}
    for pid in [process.pid, *workers.values()]:  # the whole job at once: torchrun and both workers
        os.kill(pid, signal.SIGKILL)
    process.wait()
    _wait_gone(workers.values())
    assert not (out / "weights.safetensors").exists()
    resumed = subprocess.run(torchrun(str(path), "--out", str(out), "--resume"), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming small-mlp at epoch" in resumed.stdout
    a, b = load_file(str(out / "weights.safetensors")), load_file(str(tmp_path / "reference" / "weights.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
    one = run_zoo("build", str(path), "--out", str(out), "--resume")
    assert one.returncode == 2 and "nothing to resume" in one.stderr


def test_two_nodes_on_loopback_with_torchruns_rendezvous_flags(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = recipe(tmp_path, epochs=2)
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                               f"--node-rank={n}", "--master-addr=127.0.0.1", f"--master-port={port}",
                               "-m", "zoo", "build", str(path), "--out", str(tmp_path / "run"), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "weights identical on all 2 processes" in outputs[0][0]
    assert "epoch 2/2" not in outputs[1][0]  # the second node's rank logs nothing
    assert read_meta(tmp_path / "run" / "weights.safetensors").processes == 2


ACCUMULATING = """
import json, os, sys
from pathlib import Path
import torch
import torch.distributed as dist
import zoo
from zoo.recipe.parse import Recipe
from zoo.recipe.schema import validate
from zoo.registry.events import Events
from zoo.training import distributed
from zoo.training.build import new_run
from zoo.training.loop import fit

context = distributed.from_environment()
registry = zoo.default_registry()
results = {}
for accumulate in (1, 2, 3):
    recipe = {"name": "accumulate", "model": {"component": "linear", "in_features": 4, "out_features": 2},
              "data": {"dataset": {"component": "synthetic-regression", "n": 80, "in_features": 4, "out_features": 2},
                       "batch_size": 4, "eval_split": None},
              "train": {"epochs": 1, "optimizer": {"component": "sgd", "lr": 0.1}, "loss": "mse",
                        "accumulate": accumulate}}
    run = new_run(validate(Recipe(recipe, {}, Path("recipe.yaml"))), Path(sys.argv[1]), registry=registry,
                  context=context)
    run.events = Events([])
    ddp = distributed.wrap(run.model, torch.device("cpu"), context)
    reductions = []

    def counting(state, bucket):  # DDP's default all-reduce, counted
        reductions.append(1)
        future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
        return future.then(lambda f: f.value()[0] / dist.get_world_size())

    ddp.register_comm_hook(None, counting)
    fit(run, ddp)
    results[accumulate] = {"reductions": len(reductions), "weight": run.model.weight.flatten().tolist()}
with open(os.path.join(sys.argv[1], f"rank{context.rank}.json"), "w") as f:
    json.dump(results, f)
distributed.close(context)
os._exit(0)  # as zoo's CLI does under torchrun: gloo's threads can abort the interpreter's finalization
"""


def test_accumulation_under_ddp_all_reduces_once_per_optimizer_step(tmp_path):
    """40 samples per process in batches of 4: 10 batches, so 10, 5 or 4 optimizer steps (the last
    group short) for accumulate 1, 2 and 3."""
    script = tmp_path / "accumulate.py"
    script.write_text(ACCUMULATING)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    result = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for accumulate, expected in (("1", 10), ("2", 5), ("3", 4)):
        assert [r[accumulate]["reductions"] for r in ranks] == [expected, expected]
        assert ranks[0][accumulate]["weight"] == ranks[1][accumulate]["weight"]  # the skipped reductions did not let the ranks drift
