"""zoo build under torchrun on CPU (gloo, loopback): DDP and FSDP, two nodes, elastic restarts after a
SIGKILL, a job that keeps dying, resume, and the strategies' pieces in one torchrun script."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, CHECKPOINT, SMALL_MLP, read_checkpoint, wait_for, write_recipe
from safetensors.torch import load_file

import zoo
from zoo.weights.format import read_meta

# Every run here trains one thread per process, so that one node of two processes and two nodes of one
# compute the same bits; 2 epochs of 100 batches per process, checkpoints every 40 steps.
SETTINGS = ("--set=train.threads=1", "--set=train.checkpoint_every=40", "--no-progress")


def zoo_build(recipe: Path, out: Path, *args: str) -> list[str]:
    return [str(BIN / "zoo"), "build", str(recipe), "--out", str(out), *SETTINGS, *args]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "weights.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_recipe(tmp_path_factory.mktemp("recipe"), SMALL_MLP, epochs=2, batch=25)


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Uninterrupted runs of the recipe on 2 processes, one per strategy."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "runs" / "small-mlp").mkdir(parents=True)
    (folder / "runs" / "small-mlp" / "metrics.jsonl").write_text("{}\n")  # an earlier run: ddp's takes -2
    ddp = subprocess.run([str(BIN / "zoo"), "build", str(recipe), *SETTINGS, "--nproc", "2"], capture_output=True,
                         text=True, timeout=600, cwd=folder)
    assert ddp.returncode == 0, ddp.stderr
    fsdp = subprocess.run(zoo_build(recipe, folder / "fsdp", "--nproc", "2", "--set=train.strategy=fsdp"),
                          capture_output=True, text=True, timeout=600)
    assert fsdp.returncode == 0, fsdp.stderr
    return {"ddp": (folder / "runs" / "small-mlp-2", ddp), "fsdp": (folder / "fsdp", fsdp)}


def test_nproc_relaunches_through_torchrun_and_two_processes_train_one_model(reference):
    out, result = reference["ddp"]
    log = result.stdout
    assert "100 batches of 25 per epoch on each of 2 processes (gloo, ddp)" in log
    assert re.search(r"device cpu, 1 CPU thread$", log, re.M)
    assert "weights identical on all 2 processes" in log
    assert log.count("epoch 2/2") == 1 and log.count("holds an earlier run") == 1  # only rank 0 logs
    assert sorted(p.name for p in out.iterdir()) == ["loss.png", "metrics.jsonl", "recipe.yaml", "weights.safetensors"]
    assert read_meta(out / "weights.safetensors").processes == 2
    assert history(out)[-1]["test_accuracy"] > 0.85


def test_fsdp_trains_to_ddps_losses_and_writes_one_ordinary_weights_file(reference):
    """The same steps sharded: every recorded loss within 1e-5 of DDP's, the weights within 1e-5, and
    the gathered file is an ordinary zoo weights file of the whole model."""
    (ddp, _), (fsdp, result) = reference["ddp"], reference["fsdp"]
    assert "on each of 2 processes (gloo, fsdp)" in result.stdout
    assert "weights gathered from 2 shards onto rank 0" in result.stdout
    for a, b in zip(history(ddp), history(fsdp), strict=True):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert abs(a[key] - b[key]) < 1e-5, (key, a[key], b[key])
    a, b = weights(ddp), weights(fsdp)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert sorted(p.name for p in fsdp.iterdir()) == ["loss.png", "metrics.jsonl", "recipe.yaml", "weights.safetensors"]
    model = zoo.load(str(fsdp / "weights.safetensors"))
    assert model.zoo_meta.processes == 2 and model.zoo_meta.recipe["train"]["strategy"] == "fsdp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_the_weights_of_two_processes_on_one(recipe, reference, tmp_path):
    rdzv = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen(zoo_build(recipe, tmp_path / "run", "--nnodes", "2", "--node-rank", str(n),
                                        "--rdzv", rdzv),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    logs = [out for out, _ in outputs]
    assert sum("weights identical on all 2 processes" in log for log in logs) == 1  # one process, on one node, logs
    assert sum("epoch 2/2" in log for log in logs) == 1
    assert read_meta(tmp_path / "run" / "weights.safetensors").processes == 2
    assert same(weights(tmp_path / "run"), weights(reference["ddp"][0]))


def _rank_pids(parent: int) -> dict[int, int]:
    """rank -> pid of the workers under a torchrun agent process."""
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


def _kill_rank(process: subprocess.Popen, rank: int, besides: set[int] = frozenset(), timeout: float = 300) -> int:
    """SIGKILL the worker of ``rank`` under ``process`` (one whose pid is not in ``besides``); its pid."""
    deadline = time.monotonic() + timeout
    while (pid := _rank_pids(process.pid).get(rank)) is None or pid in besides:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no worker of rank {rank}"
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_worker_is_restarted_and_the_job_resumes_from_its_shards_to_the_uninterrupted_weights(
        recipe, reference, tmp_path):
    """SIGKILL of rank 1 mid-epoch under --max-restarts 1: torchrun restarts both processes, zoo resumes
    by itself from the step checkpoint, the shards each process wrote, and the final weights are the
    uninterrupted run's, bit for bit. (The checkpoint code past the strategy's write and read is the
    same for ddp, whose resume the next test checks.)"""
    out = tmp_path / "run"
    process = subprocess.Popen(zoo_build(recipe, out, "--nproc", "2", "--max-restarts", "1",
                                         "--set=train.strategy=fsdp"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / CHECKPOINT, process)
    shards = [f for d in (out / "checkpoint").glob("shards-*") for f in d.iterdir()]
    assert len(shards) == 2  # one file per process, no process holding the whole state
    halves = [load_file(str(f))["state.model.linear_relu_stack.0.weight"].shape for f in shards]
    assert halves == [torch.Size([32, 784])] * 2  # each holds half of the (64, 784) matrix
    _kill_rank(process, 1)
    log, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "restart 1 of this job by torchrun: resuming from the checkpoint" in log
    resumed = re.search(r"resuming small-mlp at epoch (\d+), batch (\d+)", log)
    assert resumed and int(resumed[2]) % 40 == 0 and (resumed[1], resumed[2]) != ("1", "0")  # from a step checkpoint
    assert same(weights(out), weights(reference["fsdp"][0]))
    assert not (out / "checkpoint").exists()


def test_a_job_that_keeps_dying_stops_with_one_line_and_resume_finishes_it(recipe, reference, tmp_path):
    out = tmp_path / "run"
    command = zoo_build(recipe, out, "--nproc", "2")
    process = subprocess.Popen([*command, "--max-restarts", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for(out / CHECKPOINT, process)
    first = _kill_rank(process, 1)
    second = _kill_rank(process, 1, besides={first})  # the restarted worker of rank 1 dies too
    _, err = process.communicate(timeout=600)
    assert process.returncode == 1
    assert re.search(rf"^zoo: error: rank 1 \(pid {second}\) was killed by SIGKILL; the job stopped after 1 "
                     r"restart\(s\) \(--max-restarts\)\. .*--resume continues it$", err, re.M), err
    assert "Traceback" not in err
    assert read_checkpoint(out)["position"]["step"] >= 40  # whole: its digests check
    assert not (out / "weights.safetensors").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming small-mlp at epoch" in resumed.stdout
    assert same(weights(out), weights(reference["ddp"][0]))


def test_a_resume_on_more_than_two_processes_ends_on_the_uninterrupted_weights(recipe, tmp_path):
    """With three processes DDP's first backward (buckets by parameter order) and its later ones
    (rebuilt in the order gradients became ready) add the same gradients in another order: before the
    resumed run settled its buckets, its first step differed in the last bits (3.0e-8 in the final
    weights with four processes, 0 with two, where a + b is b + a)."""
    three = ("--nproc", "3", "--set=train.epochs=1")
    straight = subprocess.run(zoo_build(recipe, tmp_path / "straight", *three), capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "run"
    from test_architecture import events_env

    env = {**os.environ, **events_env(tmp_path), "FX_EVENTS_KILL": "zoo_epoch_end:1"}  # after a step checkpoint
    killed = subprocess.run(zoo_build(recipe, out, *three), capture_output=True, text=True, timeout=600, env=env)
    assert killed.returncode != 0 and (out / CHECKPOINT).is_file() and read_checkpoint(out)["position"]["step"] > 0
    resumed = subprocess.run([*zoo_build(recipe, out, *three), "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert same(weights(out), weights(tmp_path / "straight"))


def test_ctrl_c_stops_the_whole_job_at_one_step_and_saves_it(tmp_path):
    """SIGINT to the process group, as a terminal's Ctrl-C sends it: the workers agree on a step, rank 0
    saves it and says so once, and zoo's agent says what stopped the job."""
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=20, batch=25)
    out = tmp_path / "run"
    process = subprocess.Popen(zoo_build(recipe, out, "--nproc", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    wait_for(out / CHECKPOINT, process)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped = re.findall(r"^zoo: interrupted at epoch (\d+), batch (\d+); checkpoint saved\. Continue with: zoo build .* "
                         r"--resume --out .*$", err, re.M)
    assert len(stopped) == 1, err  # rank 0's line only
    assert "zoo: SIGINT stopped the job; the last checkpoint is in the run folder" in err
    position = read_checkpoint(out)["position"]
    assert (position["epoch"] + 1, position["step"]) == tuple(map(int, stopped[0]))  # the step it said


SCRIPT = """
import json, os, sys
from pathlib import Path
import torch
import torch.distributed as dist
import zoo
from zoo.assembly import distributed
from zoo.errors import ZooError
from zoo.recipe.parse import Recipe
from zoo.recipe.schema import validate
from zoo.registry.events import Events
from zoo.training import checkpoint
from zoo.training.build import new_run
from zoo.training.loop import fit

out = Path(sys.argv[1])
context = distributed.from_environment()
registry = zoo.default_registry()
torch.set_num_threads(1)
results = {}


def start(recipe, folder, resume=False):
    run = new_run(validate(Recipe(recipe, {}, Path("recipe.yaml"))), folder, registry=registry, context=context)
    run.events = Events([], run.callbacks)  # the recipe's callbacks, no plugins
    if resume:
        checkpoint.resume(run)
    return run


def linear(**train):
    return {"name": "linear", "model": {"component": "linear", "in_features": 4, "out_features": 2},
            "data": {"dataset": {"component": "synthetic-regression", "n": 80, "in_features": 4, "out_features": 2},
                     "batch_size": 4, "eval_split": None},
            "train": {"epochs": 1, "optimizer": {"component": "sgd", "lr": 0.1}, "loss": "mse", **train}}


# DDP all-reduces once per optimizer step when accumulating: 10 batches per process make 10, 5 or 4 steps
for accumulate in (1, 2, 3):
    run = start(linear(accumulate=accumulate), out / f"accumulate{accumulate}")
    ddp = run.strategy.wrap(run.model, torch.device("cpu"), context)
    reductions = []

    def counting(state, bucket):  # DDP's default all-reduce, counted
        reductions.append(1)
        future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
        return future.then(lambda f: f.value()[0] / dist.get_world_size())

    ddp.register_comm_hook(None, counting)
    fit(run, ddp)
    results[f"accumulate{accumulate}"] = {"reductions": len(reductions), "weight": run.model.weight.flatten().tolist()}

# FSDP against DDP with accumulation and clipping, and FSDP with bfloat16 parameters in the forward pass
for strategy, precision in (("ddp", "32"), ("fsdp", "32"), ("fsdp", "bf16")):
    run = start(linear(epochs=2, accumulate=2, grad_clip=0.05, strategy=strategy, precision=precision),
                out / f"{strategy}{precision}")
    seen = []
    run.model.register_forward_hook(lambda module, args, output: seen.append(str(output.dtype)))
    fit(run, run.strategy.wrap(run.model, torch.device("cpu"), context))
    tensors, _ = run.strategy.weights(run.model, context)
    if context.is_main:
        results[strategy + precision] = {k: v.flatten().tolist() for k, v in tensors.items()}
        results[strategy + precision + "-forward"] = sorted(set(seen))
        results[strategy + precision + "-saved"] = sorted({str(v.dtype) for v in tensors.values()})

# an MNIST MLP under FSDP: what the sharded model predicts, its gathered weights file, its sharded checkpoint
mlp = {"name": "sharded-mlp", "model": {"component": "mnist-mlp", "hidden": [32, 16]},
       "data": {"dataset": {"component": "mnist"}, "batch_size": 100, "eval_batch_size": 5000},
       "train": {"epochs": 1, "seed": 3, "optimizer": {"component": "adam", "lr": 1.0e-3}, "loss": "cross-entropy",
                 "strategy": "fsdp", "callbacks": [{"component": "best-checkpoint", "monitor": "test_accuracy"}]},
       "metrics": ["accuracy"]}
run = start(mlp, out / "mlp")
fit(run)
images = run.parts.eval_data.batch(torch.arange(16))[0]
with torch.no_grad():
    run.model.eval()
    logits = run.model(images)
run.save_weights(out / "mlp.safetensors")
checkpoint.save(run)
again = start(mlp, out / "mlp", resume=True)
mine = {k: v.to_local() for k, v in run.model.state_dict().items()}
restored = {k: v.to_local() for k, v in again.model.state_dict().items()}
results[f"restored{context.rank}"] = all(torch.equal(mine[k], restored[k]) for k in mine)
best, kept = run.callbacks[0].target.weights, again.callbacks[0].target.weights  # a callback's sharded copy
results[f"callback{context.rank}"] = all(torch.equal(best[k].to_local(), kept[k].to_local()) for k in best)
dist.barrier()
if context.is_main:
    shard = next((out / "mlp" / "checkpoint").glob("shards-*/*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
dist.barrier()
try:
    start(mlp, out / "mlp", resume=True)
except ZooError as exc:
    results["corrupt"] = str(exc)
if context.is_main:
    results["logits"] = logits.tolist()
    results["images"] = images.tolist()
with open(out / f"rank{context.rank}.json", "w") as f:
    json.dump(results, f)
distributed.close(context)
os._exit(0)  # as zoo's CLI does under torchrun: gloo's threads can abort the interpreter's finalization
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> tuple[Path, list[dict]]:
    """SCRIPT's results on each of 2 processes."""
    folder = tmp_path_factory.mktemp("script")
    (folder / "script.py").write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(folder / "script.py"), str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return folder, [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_accumulation_under_ddp_all_reduces_once_per_optimizer_step(script):
    _, ranks = script
    for accumulate, expected in (("1", 10), ("2", 5), ("3", 4)):
        assert [r[f"accumulate{accumulate}"]["reductions"] for r in ranks] == [expected, expected]
        # the skipped reductions did not let the ranks drift
        assert ranks[0][f"accumulate{accumulate}"]["weight"] == ranks[1][f"accumulate{accumulate}"]["weight"]


def test_fsdp_accumulates_and_clips_as_ddp_does(script):
    _, ranks = script
    ddp, fsdp = ranks[0]["ddp32"], ranks[0]["fsdp32"]
    assert ddp.keys() == fsdp.keys() == {"weight", "bias"}
    for key in ddp:
        assert max(abs(a - b) for a, b in zip(ddp[key], fsdp[key], strict=True)) < 1e-6
    assert ddp["weight"] != ranks[0]["accumulate2"]["weight"]  # (the clipping and second epoch changed something)


def test_fsdps_bf16_policy_computes_in_bfloat16_and_keeps_float32_weights(script):
    _, ranks = script
    result = ranks[0]
    assert result["fsdp32-forward"] == ["torch.float32"] and result["fsdpbf16-forward"] == ["torch.bfloat16"]
    assert result["fsdpbf16-saved"] == ["torch.float32"]
    fp32, bf16 = result["fsdp32"]["weight"], result["fsdpbf16"]["weight"]
    assert fp32 != bf16 and max(abs(a - b) for a, b in zip(fp32, bf16, strict=True)) < 0.05


def test_fsdps_gathered_weights_load_with_zoo_load_and_predict_like_the_sharded_model(script):
    folder, ranks = script
    model = zoo.load(str(folder / "mlp.safetensors"))
    with torch.no_grad():
        logits = model(torch.tensor(ranks[0]["images"]))
    sharded = torch.tensor(ranks[0]["logits"])
    assert logits.shape == sharded.shape == (16, 10)
    assert torch.allclose(logits, sharded, atol=1e-5)
    assert model.zoo_meta.processes == 2


def test_an_fsdp_checkpoint_restores_every_shard_and_refuses_a_corrupt_one(script):
    _, ranks = script
    assert [ranks[0]["restored0"], ranks[1]["restored1"]] == [True, True]
    assert [ranks[0]["callback0"], ranks[1]["callback1"]] == [True, True]  # best-checkpoint's copy, sharded too
    for rank in ranks:
        assert re.fullmatch(r"checkpoint \S+/checkpoint: shards-[0-9a-f]{8}/\S+\.safetensors does not match the "
                            r"digest it was written with; it is corrupt\. Delete it to start over", rank["corrupt"])


def test_fsdp_shards_the_blocks_a_model_names_or_its_containers_members():
    from zoo_training.strategies import blocks

    registry = zoo.default_registry()
    encoder = registry.get("transformer-encoder", "model").build(vocab_size=16, dim=8, heads=2, layers=3)
    assert blocks(encoder) == ["layers.0", "layers.1", "layers.2"]  # what its zoo_blocks names
    mlp = registry.get("mnist-mlp", "model").build(hidden=[8, 8])
    assert blocks(mlp) == ["linear_relu_stack.0", "linear_relu_stack.2", "linear_relu_stack.4"]  # the ReLUs hold nothing
    head = registry.get("linear", "layer").build(in_features=8, out_features=16)
    stacked = torch.nn.Sequential(encoder, head)  # as a recipe's sequential model: the encoder's layers, then it
    assert blocks(stacked) == ["0.layers.0", "0.layers.1", "0.layers.2", "0", "1"]
