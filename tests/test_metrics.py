"""Metrics as components: values against independent computations, sequences with padding,
regression, torchrun, and located errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL_MLP, assert_png, run_zoo, write_recipe

import zoo
from zoo.recipe import catalog, schema
from zoo.assembly.assembler import Assembler
from zoo.assembly.parts import build_metrics
from zoo.recipe.nodes import node
from zoo.training.loop import evaluate


def last_record(out: Path) -> dict:
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def predictions(model, data) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = data.batch(torch.arange(len(data)))
    with torch.no_grad():
        return model(inputs), targets


def test_classification_metrics_match_an_independent_computation(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=250).read_text().replace(
        "metrics: [accuracy]", "metrics: [accuracy, macro-f1, micro-f1, {component: top-k-accuracy, k: 3}]")
    path = tmp_path / "metrics.yaml"
    path.write_text(recipe)
    out = tmp_path / "run"
    result = run_zoo("build", str(path), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    record = last_record(out)
    logits, y = predictions(zoo.load(out / "weights.safetensors"), zoo.create("mnist", split="test"))
    predicted = logits.argmax(-1)
    f1s = []
    for c in range(10):
        tp = ((predicted == c) & (y == c)).sum().item()
        fp, fn = ((predicted == c) & (y != c)).sum().item(), ((predicted != c) & (y == c)).sum().item()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    top3 = (logits.topk(3, dim=-1).indices == y[:, None]).any(-1).float().mean().item()
    accuracy = (predicted == y).float().mean().item()
    assert record["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert record["test_micro_f1"] == pytest.approx(accuracy, abs=1e-4)  # single-label: micro F1 is accuracy
    assert record["test_macro_f1"] == pytest.approx(sum(f1s) / 10, abs=1e-4)
    assert record["test_top_k_accuracy"] == pytest.approx(top3, abs=1e-4) and top3 > accuracy
    assert zoo.load(out / "weights.safetensors").zoo_meta.metrics["test_macro_f1"] == record["test_macro_f1"]


def test_a_confusion_matrix_is_saved_as_csv_and_plot_and_matches_the_predictions(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP.replace("metrics: [accuracy]", "metrics: [accuracy, confusion-matrix]"),
                          epochs=1, batch=250)
    out = tmp_path / "run"
    result = run_zoo("build", str(recipe), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = (out / "test_confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "true \\ predicted," + ",".join(str(d) for d in range(10))
    matrix = torch.tensor([[int(v) for v in row.split(",")[1:]] for row in rows[1:]])
    logits, y = predictions(zoo.load(out / "weights.safetensors"), zoo.create("mnist", split="test"))
    expected = torch.bincount(y * 10 + logits.argmax(-1), minlength=100).reshape(10, 10)
    assert torch.equal(matrix, expected)
    assert last_record(out)["test_accuracy"] == pytest.approx(matrix.diag().sum().item() / 10_000, abs=1e-4)
    assert "test_confusion_matrix" not in last_record(out)  # not a number: the CSV and the plot hold it
    assert_png(out / "test_confusion_matrix.png", (650, 800), min_bytes=5_000)


def test_per_token_accuracy_leaves_padding_out_and_regression_metrics_are_exact():
    registry = zoo.default_registry()
    assembler = Assembler(registry)
    recipe = schema.read(catalog.recipe_path("feed-forward-copy", zoo.default_registry())).recipe
    nodes = tuple(node(name, ("metrics", i), recipe) for i, name in enumerate(["accuracy"]))
    logits = torch.randn(4, 6, 9, generator=torch.Generator().manual_seed(0))
    targets = logits.argmax(-1)
    targets[:, 4:] = -100  # padding: never counted
    targets[0, 0] = (targets[0, 0] + 1) % 9  # one wrong real token of 16
    metrics = build_metrics(nodes, assembler, torch.device("cpu"), logits, targets)
    metrics["accuracy"].update(logits, targets)
    assert float(metrics["accuracy"].compute()) == pytest.approx(15 / 16)

    model = torch.nn.Linear(3, 2)
    data = zoo.create("synthetic-regression", n=64, in_features=3, out_features=2)
    nodes = tuple(node(name, ("metrics", i), recipe) for i, name in enumerate(["mse", "mae"]))
    out, y = predictions(model, data)
    scores = evaluate(model, data, torch.nn.MSELoss(), build_metrics(nodes, assembler, torch.device("cpu"), out, y),
                      batch_size=10)
    assert scores["mse"] == pytest.approx(((out - y) ** 2).mean().item(), rel=1e-5)
    assert scores["mae"] == pytest.approx((out - y).abs().mean().item(), rel=1e-5)
    assert scores["loss"] == pytest.approx(scores["mse"], rel=1e-5)


def test_a_metric_under_torchrun_equals_the_single_process_value(tmp_path):
    script = tmp_path / "score.py"
    script.write_text("""
import json, os, sys, torch
import zoo
from zoo.assembly import distributed
from zoo.assembly.assembler import Assembler
from zoo.assembly.parts import build_metrics
from zoo.recipe.nodes import node
from zoo.training.loop import evaluate
from zoo.recipe import catalog, schema
context = distributed.from_environment()
model = zoo.load("mnist-mlp")
data = zoo.create("mnist", split="test")
recipe = schema.read(catalog.recipe_path("mnist-mlp", zoo.default_registry())).recipe
nodes = tuple(node(n, ("metrics", i), recipe) for i, n in enumerate(["accuracy", "macro-f1", "confusion-matrix"]))
x, y = data.batch(torch.arange(8))
metrics = build_metrics(nodes, Assembler(zoo.default_registry()), torch.device("cpu"), model(x), y)
scores = evaluate(model, data, torch.nn.CrossEntropyLoss(), metrics, context=context, batch_size=999)
scores["confusion_matrix"] = scores["confusion_matrix"].tolist()
if context.is_main:
    print(json.dumps(scores))
distributed.close(context)
sys.stdout.flush()
os._exit(0)  # as zoo's command line under torchrun: gloo's threads can abort the interpreter's finalization
""")
    single = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True)
    assert single.returncode == 0 and ddp.returncode == 0, single.stderr + ddp.stderr
    alone, together = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (single, ddp))
    assert together["accuracy"] == pytest.approx(alone["accuracy"], abs=1e-6)  # summed states, 10,000 samples
    assert together["macro_f1"] == pytest.approx(alone["macro_f1"], abs=1e-6)
    assert together["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    assert together["confusion_matrix"] == alone["confusion_matrix"]  # counts summed over the two processes
    assert sum(map(sum, together["confusion_matrix"])) == 10_000


@pytest.mark.parametrize("metrics, message", [
    ("[accuracy, macro-f2]", r"metrics\[1\]: unknown metric 'macro-f2'. Did you mean 'macro-f1'"),
    ("[accuracy, accuracy]", r"metrics\[1\]: metric 'accuracy' is listed twice"),
    ("[{component: accuracy, top_k: 50}]", r"metrics\[0\]: metric 'accuracy' fails on a batch of the model's output"),
    ("[cross-entropy]", r"metrics\[0\]: 'cross-entropy' is a loss; here a metric is expected"),
    ("accuracy", r"metrics: expects a list of metric components, got 'accuracy'"),
])
def test_bad_metrics_are_located_errors(tmp_path, metrics, message):
    import re

    path = write_recipe(tmp_path, SMALL_MLP.replace("metrics: [accuracy]", f"metrics: {metrics}"), epochs=1, batch=100)
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("metrics:"))
    assert re.search(rf"recipe.yaml:{line}:\d+: {message}", result.stderr), result.stderr
