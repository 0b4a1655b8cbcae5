"""Callbacks and metrics from a pip-installed third-party package, used from a recipe through the CLI."""

import json
import re

import pytest
from conftest import CHECKPOINT, SMALL_MLP, run_zoo, write_recipe
from safetensors.torch import load_file


def recipe(tmp_path, log, epochs=3):
    text = SMALL_MLP.replace("metrics: [accuracy]", "metrics: [accuracy, error-rate]").replace(
        "  log_every: 10", f"  log_every: 10\n  callbacks:\n    - {{component: event-log, path: {log}}}")
    return write_recipe(tmp_path, text, epochs=epochs, batch=500)


def events(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_package_provides_a_metric_and_a_callback(extras):
    plugins = run_zoo("plugins", env=extras).stdout
    assert re.search(r"^extras +loaded +zoo-extras 0.4.0 +zoo_extras +1 metric, 1 callback, 1 transform$", plugins, re.M)
    listing = run_zoo("list", "--kind", "callback", env=extras).stdout
    assert ["event-log", "callback", "extras"] in [line.split()[:3] for line in listing.splitlines()[1:]]


def test_a_recipe_uses_the_plugins_metric_and_callback(tmp_path, extras):
    log = tmp_path / "events.jsonl"
    out = tmp_path / "run"
    result = run_zoo("build", str(recipe(tmp_path, log)), "--out", str(out), "--no-progress", env=extras)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for record in records:  # the metric, computed independently of accuracy, is its complement
        assert record["test_error_rate"] == pytest.approx(1 - record["test_accuracy"], abs=1e-6)
    heard = events(log)
    assert [e["event"] for e in heard] == ["zoo_run_start"] + ["zoo_epoch_end"] * 3 + ["zoo_run_end"]
    assert [e.get("epoch") for e in heard[1:4]] == [1, 2, 3] and heard[-1]["epochs_seen"] == 3
    assert [e["error_rate"] for e in heard[1:4]] == [r["test_error_rate"] for r in records]


def test_a_raising_callback_stops_the_run_by_name_and_resume_restores_its_state(tmp_path, extras):
    log = tmp_path / "events.jsonl"
    path = recipe(tmp_path, log)
    out = tmp_path / "run"
    failed = run_zoo("build", str(path), "--out", str(out), "--no-progress",
                     env={**extras, "EVENT_LOG_FAIL": "zoo_epoch_end:2"})
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "event-log" in text)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert re.search(rf"recipe.yaml:{line}:\d+: train.callbacks\[0\]: callback 'event-log' raised in zoo_epoch_end: "
                     r"RuntimeError: event-log was told to fail in zoo_epoch_end", failed.stderr), failed.stderr
    assert (out / CHECKPOINT).is_file()  # epoch 1's, whole
    resumed = run_zoo("build", str(path), "--out", str(out), "--no-progress", "--resume", env=extras)
    assert resumed.returncode == 0, resumed.stderr
    heard = [(e["event"], e.get("epoch"), e["epochs_seen"]) for e in events(log)]
    assert heard == [("zoo_run_start", None, 0), ("zoo_epoch_end", 1, 1),  # then it raised at epoch 2's end
                     ("zoo_run_start", None, 1),  # resumed: its state from epoch 1's checkpoint
                     ("zoo_epoch_end", 2, 2), ("zoo_epoch_end", 3, 3), ("zoo_run_end", None, 3)]
    straight = tmp_path / "straight"
    clean = run_zoo("build", str(recipe(tmp_path, tmp_path / "other.jsonl")), "--out", str(straight), "--no-progress",
                    env=extras)
    assert clean.returncode == 0, clean.stderr
    a, b = load_file(str(out / "weights.safetensors")), load_file(str(straight / "weights.safetensors"))
    assert all(a[k].equal(b[k]) for k in a)


@pytest.mark.parametrize("callbacks, message", [
    ("[event-logg]", r"train.callbacks\[0\]: unknown callback 'event-logg'. Did you mean 'event-log'"),
    ("[accuracy]", r"train.callbacks\[0\]: 'accuracy' is a metric; here a callback is expected"),
    ("[{component: event-log}]", r"train.callbacks\[0\]: callback 'event-log': missing required parameter 'path'"),
])
def test_bad_callbacks_are_located_errors(tmp_path, extras, callbacks, message):
    text = SMALL_MLP.replace("  log_every: 10", f"  log_every: 10\n  callbacks: {callbacks}")
    path = write_recipe(tmp_path, text, epochs=1, batch=500)
    result = run_zoo("check", str(path), env=extras)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(rf"recipe.yaml:\d+:\d+: {message}", result.stderr), result.stderr
