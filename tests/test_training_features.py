"""Training features: precision, gradient accumulation, early stopping, the best checkpoint and the
loggers (built-in callbacks), each through a recipe; resume after kill -9; torchrun."""

import csv
import json
import re

import pytest
import torch
from conftest import SMALL_MLP, build, make_run, run_zoo, write_recipe
from safetensors.torch import load_file
from test_architecture import events_env

import zoo

from zoo.training.loop import fit
from zoo.weights.format import read_meta
from zoo.weights.metadata import Stopped

MONITORED = SMALL_MLP.replace("lr: 1.0e-3", "lr: 3.0e-3").replace("  log_every: 10", """\
  log_every: 10
  callbacks:
    - {component: early-stopping, monitor: test_loss, patience: 2}
    - {component: best-checkpoint, monitor: test_accuracy}""")


def records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def quiet(out, recipe, *overrides):
    return build(str(recipe), list(overrides), out=out, disable=["progress"], log=lambda s: None)


# --- precision ---

@pytest.mark.parametrize("precision, inside", [("32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_dtype_inside_the_forward_pass_and_weights_stay_float32(tmp_path, precision, inside):
    seen = set()

    def probe(module, args, out):
        if isinstance(module, torch.nn.Linear):
            seen.add((module.training, out.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(probe)
    try:
        quiet(tmp_path / "run", write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=100), f"train.precision={precision}")
    finally:
        handle.remove()
    assert seen == {(True, inside), (False, inside)}  # training and evaluation batches
    tensors = load_file(str(tmp_path / "run" / "weights.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert records(tmp_path / "run")[-1]["test_accuracy"] > 0.8


def test_weights_dtype_saves_bfloat16_that_loads(tmp_path):
    out = tmp_path / "run"
    quiet(out, write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=500), "train.weights_dtype=bfloat16")
    assert {t.dtype for t in load_file(str(out / "weights.safetensors")).values()} == {torch.bfloat16}
    assert {p.dtype for p in zoo.load(out / "weights.safetensors").parameters()} == {torch.bfloat16}
    model = zoo.load(out / "weights.safetensors", dtype=torch.float32)
    x, y = zoo.create("mnist", split="test").batch(torch.arange(10_000))
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy == pytest.approx(records(out)[-1]["test_accuracy"], abs=0.01)  # bf16 rounding of the weights


@pytest.mark.parametrize("override, key, message", [
    ("train.precision=16-mixed", "precision",
     r"train.precision: precision 16-mixed \(float16 with a gradient scaler\) needs a CUDA device, and this run is "
     r"on cpu; use bf16 on a CPU"),
    ("train.precision=fp8", "precision", r"train.precision: expects 32, bf16 or 16-mixed, got 'fp8'"),
    ("train.accumulate=0", "accumulate", r"train.accumulate: expects a positive integer, got 0"),
    ("train.callbacks=[{component: early-stopping, monitor: test_acuracy}]", "callbacks",
     r"train.callbacks\[0\]: monitor 'test_acuracy' is not recorded by this recipe. Did you mean 'test_accuracy'\? "
     r"Each epoch records: train_loss, test_loss, test_accuracy"),
])
def test_bad_training_settings_are_located_errors(tmp_path, override, key, message):
    text = SMALL_MLP.replace("  log_every: 10", f"  log_every: 10\n  {key}: PLACEHOLDER")
    path = write_recipe(tmp_path, text.replace("PLACEHOLDER", override.split("=", 1)[1]), epochs=1, batch=100)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith(f"  {key}:"))
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(rf"recipe.yaml:{line}:\d+: {message}", result.stderr), result.stderr


# --- gradient accumulation ---

def test_accumulating_k_batches_equals_one_batch_k_times_larger(tmp_path):
    def train(batch, accumulate):
        recipe = {"name": "accumulate", "model": {"component": "mnist-mlp", "hidden": [32]},
                  "data": {"dataset": "mnist", "batch_size": batch, "eval_split": None},
                  "train": {"epochs": 2, "optimizer": {"component": "sgd", "lr": 0.5}, "loss": "cross-entropy",
                            "accumulate": accumulate,
                            "schedule": {"component": "one-cycle", "max_lr": 0.5}}}
        run = make_run(recipe, tmp_path)
        fit(run)
        return run.model.state_dict()

    # 5,000 samples: 300 x 2 = 600 per step leaves a last group of 200, one batch -- weighted exactly
    large, accumulated = train(600, 1), train(300, 2)
    for key in large:
        torch.testing.assert_close(accumulated[key], large[key], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(train(300, 1)["linear_relu_stack.0.weight"], large["linear_relu_stack.0.weight"])


# --- early stopping and the best checkpoint ---

def test_early_stopping_stops_at_the_right_epoch_on_a_constructed_sequence():
    from zoo_callbacks.monitoring import EarlyStopping

    class FakeRun:
        def __init__(self):
            self.stopped = []

        def stop(self, reason):
            self.stopped.append(reason)

    losses = [1.0, 0.8, 0.797, 0.79, 0.80, 0.789, 0.70, 0.71]
    # min_delta 0.005: epoch 3 (0.797) is no improvement on 0.8; epoch 4 (0.79) is; 5 and 6 are not -> stop at 6
    callback, run = EarlyStopping("test_loss", ("train_loss", "test_loss"), patience=2, min_delta=0.005), FakeRun()
    stopped_at = None
    for epoch, loss in enumerate(losses, start=1):
        callback.zoo_epoch_end(run, epoch, {"test_loss": loss})
        if run.stopped:
            stopped_at = epoch
            break
    assert stopped_at == 6
    assert run.stopped == ["test_loss did not improve by more than 0.005 for 2 epochs (best 0.7900 at epoch 4)"]
    # the count survives a checkpoint: restored after epoch 5, it stops at 6 all the same
    fresh, again = EarlyStopping("test_loss", ("test_loss",), patience=2, min_delta=0.005), FakeRun()
    for epoch, loss in enumerate(losses[:5], start=1):
        fresh.zoo_epoch_end(FakeRun(), epoch, {"test_loss": loss})
    restored = EarlyStopping("test_loss", ("test_loss",), patience=2, min_delta=0.005)
    restored.load_state_dict(json.loads(json.dumps(fresh.state_dict())))
    restored.zoo_epoch_end(again, 6, {"test_loss": losses[5]})
    assert again.stopped == run.stopped
    accuracy = EarlyStopping("acc", ("acc",), patience=1)  # auto mode: anything but a loss is maximised
    accuracy.zoo_epoch_end(again, 1, {"acc": 0.5})
    accuracy.zoo_epoch_end(again, 2, {"acc": 0.6})
    assert len(again.stopped) == 1


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    """An uninterrupted run of MONITORED that stops early; best weights kept."""
    folder = tmp_path_factory.mktemp("monitored")
    out = folder / "run"
    recipe = write_recipe(folder, MONITORED, epochs=30, batch=100)
    result = run_zoo("build", str(recipe), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return recipe, out, result.stdout


def test_early_stopping_ends_the_run_and_records_why(monitored_run):
    _, out, stdout = monitored_run
    history = records(out)
    stopped = len(history)
    assert 3 <= stopped < 30
    losses = [r["test_loss"] for r in history]
    best = losses.index(min(losses)) + 1
    assert best == stopped - 2 and min(losses[-2:]) >= min(losses)  # two epochs without improvement, then stop
    reason = f"test_loss did not improve for 2 epochs (best {min(losses):.4f} at epoch {best})"
    assert f"stopped after epoch {stopped} of 30: {reason}" in stdout
    assert read_meta(out / "weights.safetensors").stopped == Stopped(stopped, reason)


def test_the_best_checkpoint_keeps_the_best_epochs_weights_and_the_last(monitored_run):
    _, out, stdout = monitored_run
    history = records(out)
    accuracies = [r["test_accuracy"] for r in history]
    best = accuracies.index(max(accuracies)) + 1
    meta, last = read_meta(out / "weights.safetensors"), read_meta(out / "last.safetensors")
    assert meta.epoch == best and meta.chosen.epoch == best and meta.chosen.facts["monitor"] == "test_accuracy"
    assert meta.chosen.facts["value"] == max(accuracies) == meta.metrics["test_accuracy"]
    assert last.epoch == len(history) and last.metrics["test_accuracy"] == accuracies[-1]
    x, y = zoo.create("mnist", split="test").batch(torch.arange(10_000))
    for name, expected in (("weights", max(accuracies)), ("last", accuracies[-1])):
        with torch.no_grad():
            measured = (zoo.load(out / f"{name}.safetensors")(x).argmax(-1) == y).float().mean().item()
        assert measured == pytest.approx(expected, abs=1e-4)
    stored = re.search(r"recorded small-mlp in the store as small-mlp@\d+: (\S+)", stdout).group(1)
    assert read_meta(stored).epoch == best  # the store recorded the kept weights


def test_keep_last_writes_the_best_beside_it(tmp_path):
    text = MONITORED.replace("monitor: test_accuracy}", "monitor: test_accuracy, keep: last}")
    out = tmp_path / "run"
    assert run_zoo("build", str(write_recipe(tmp_path, text, epochs=30, batch=100)), "--out", str(out),
                   "--no-progress").returncode == 0
    accuracies = [r["test_accuracy"] for r in records(out)]
    assert read_meta(out / "weights.safetensors").epoch == len(accuracies)
    best = read_meta(out / "best.safetensors")
    assert best.epoch == accuracies.index(max(accuracies)) + 1 and best.metrics["test_accuracy"] == max(accuracies)


def test_kill_9_and_resume_end_where_the_uninterrupted_run_ended(tmp_path, monitored_run):
    recipe, reference, _ = monitored_run
    stopped = len(records(reference))
    out = tmp_path / "run"
    # die right after the checkpoint of epoch stopped - 1: one epoch into the patience count
    killed = run_zoo("build", str(recipe), "--out", str(out), "--no-progress",
                     env={**events_env(tmp_path), "FX_EVENTS_KILL": f"zoo_checkpoint_saved:{stopped}"}, process=True)
    assert killed.returncode == 9 and not (out / "weights.safetensors").exists()
    resumed = run_zoo("build", str(recipe), "--out", str(out), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming small-mlp at epoch {stopped}, batch 0" in resumed.stdout
    assert records(out) == [{**r, "seconds": s["seconds"], "data_wait": s["data_wait"]}
                            for r, s in zip(records(reference), records(out))]
    for name in ("weights", "last"):
        a, b = load_file(str(out / f"{name}.safetensors")), load_file(str(reference / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_meta(out / "weights.safetensors").stopped == read_meta(reference / "weights.safetensors").stopped


# --- loggers ---

def test_loggers_write_csv_tensorboard_scalars_and_the_learning_rate(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    text = SMALL_MLP.replace("  log_every: 10", """\
  log_every: 10
  schedule: {component: cosine}
  callbacks: [lr-monitor, csv-logger, tensorboard]""")
    out = tmp_path / "run"
    result = run_zoo("build", str(write_recipe(tmp_path, text, epochs=3, batch=100)), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    history = records(out)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [{k: float(v) for k, v in row.items()} for row in rows] == [{k: float(v) for k, v in r.items()}
                                                                       for r in history]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "test_loss", "test_accuracy", "lr", "seconds",
                                                 "data_wait"}
    for tag in ("train_loss", "test_accuracy", "lr"):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx([r[tag] for r in history], rel=1e-6)  # float32 in events
    # lr: what the schedule gives after each epoch's 50 steps, replayed independently
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0e-3)
    schedule = zoo.create("cosine", optimizer=optimizer, total_steps=150)
    expected = []
    for _ in range(3):
        for _ in range(50):
            optimizer.step()
            schedule.step()
        expected.append(optimizer.param_groups[0]["lr"])
    assert [r["lr"] for r in history] == pytest.approx(expected, rel=1e-12)
    assert history[0]["lr"] > history[1]["lr"] > history[2]["lr"]


def test_the_callbacks_and_features_run_under_torchrun(tmp_path):
    text = MONITORED.replace("monitor: test_accuracy}", "monitor: test_accuracy}\n    - csv-logger\n    - tensorboard")
    recipe = write_recipe(tmp_path, text, epochs=4, batch=100)
    out = tmp_path / "run"
    result = run_zoo("build", str(recipe), "--out", str(out), "--nproc", "2", "--no-progress",
                     "--set", "train.accumulate=2", "--set", "train.precision=bf16")
    assert result.returncode == 0, result.stderr
    assert "weights identical on all 2 processes" in result.stdout
    assert len(list((out / "tensorboard").iterdir())) == 1  # rank 0 only
    with open(out / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == len(records(out))
    meta = read_meta(out / "weights.safetensors")
    assert meta.processes == 2 and meta.recipe["train"]["accumulate"] == 2
    accuracies = [r["test_accuracy"] for r in records(out)]
    assert meta.epoch == accuracies.index(max(accuracies)) + 1


def test_accumulation_and_bf16_resume_mid_epoch_exactly(tmp_path, extras):
    text = SMALL_MLP.replace("  log_every: 10", "  log_every: 10\n  callbacks: [{component: event-log, path: LOG}]")
    recipe = write_recipe(tmp_path, text, epochs=2, batch=100, log=tmp_path / "events.jsonl")
    settings = ["--set", "train.accumulate=3", "--set", "train.precision=bf16"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_zoo("build", str(recipe), "--out", str(straight), "--no-progress", *settings, env=extras).returncode == 0
    stopped = run_zoo("build", str(recipe), "--out", str(resumed), "--no-progress", *settings,
                      env={**extras, "EVENT_LOG_INTERRUPT": "2:7"})
    assert stopped.returncode == 130, stopped.stderr
    again = run_zoo("build", str(recipe), "--out", str(resumed), "--resume", "--no-progress", *settings, env=extras)
    assert again.returncode == 0, again.stderr
    # Ctrl-C at optimizer step 7 (zoo_train_step fires once per group of 3 batches) stops after batch 21
    assert "resuming small-mlp at epoch 2, batch 21" in again.stdout
    a, b = load_file(str(straight / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channels_last_lays_out_the_weights_and_every_image_batch_so():
    from zoo.assembly.precision import channels_last

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    seen = []
    model[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(4, 3, 10, 10)
    expected = model(x)
    forward = channels_last(model, model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(forward(x), expected)
    assert seen == [False, True]
