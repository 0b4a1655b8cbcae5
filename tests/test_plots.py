"""zoo plot, zoo inspect and the figures behind them; the install hint when matplotlib is missing."""

import json

import pytest
import torch
from conftest import SMALL_MLP, assert_png, build, run_zoo, write_recipe
from torch import nn

from zoo.training import folders as runs
from zoo.use.inspect import FeatureStats, capture, find_module

from zoo.errors import ZooError


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot")
    out = folder / "run"
    build(str(write_recipe(folder, SMALL_MLP, epochs=3, batch=250)), out=out, disable=["progress"], log=lambda s: None)
    return out


def test_zoo_plot_redraws_loss_and_accuracy_curves_of_a_run(run_folder, tmp_path):
    target = tmp_path / "curves.png"
    result = run_zoo("plot", str(run_folder), "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {target}"
    assert_png(target, (450, 1200))  # loss on the left, accuracy on the right
    name, histories = runs.read(run_folder)
    assert name == "small-mlp" and [r["epoch"] for r in histories["small-mlp"]] == [1, 2, 3]


def test_zoo_plot_defaults_to_loss_png_in_the_run_folder(run_folder):
    (run_folder / "loss.png").unlink()
    assert run_zoo("plot", str(run_folder)).returncode == 0
    assert_png(run_folder / "loss.png", (450, 1200))


def test_zoo_plot_of_a_missing_or_unfinished_run_says_what_is_wrong(tmp_path):
    result = run_zoo("plot", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no run folder" in result.stderr and "Traceback" not in result.stderr
    result = run_zoo("plot", str(tmp_path))
    assert result.returncode == 2
    assert f"{tmp_path} has no metrics.jsonl: not a zoo run folder, or no epoch has finished yet" in result.stderr
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.5}\n{"epoch": 2,\n')
    result = run_zoo("plot", str(tmp_path))
    assert result.returncode == 2 and "metrics.jsonl:2: not a JSON record" in result.stderr


def test_without_matplotlib_the_commands_say_how_to_install_it(run_folder, tmp_path, no_matplotlib):
    result = run_zoo("plot", str(run_folder), "--out", str(tmp_path / "x.png"), env=no_matplotlib)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "zoo plot draws with matplotlib, which is not installed: pip install -e '.[plot]' (matplotlib) in a zoo checkout" in result.stderr
    assert not (tmp_path / "x.png").exists()
    result = run_zoo("inspect", "mnist-mlp", "--module", "linear_relu_stack.0", env=no_matplotlib)
    assert result.returncode == 2 and "use --no-plot for the table alone" in result.stderr
    result = run_zoo("inspect", "mnist-mlp", "--module", "linear_relu_stack.0", "--no-plot", env=no_matplotlib)
    assert result.returncode == 0 and "input   784" in result.stdout
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=500)
    result = run_zoo("build", str(recipe), "--no-progress", "--out", str(tmp_path / "run"), env=no_matplotlib)
    assert result.returncode == 0, result.stderr
    assert "no plot: pip install -e '.[plot]' (matplotlib) in a zoo checkout to get plots" in result.stdout
    assert not (tmp_path / "run" / "loss.png").exists() and (tmp_path / "run" / "weights.safetensors").is_file()


def test_feature_stats_are_per_feature_population_mean_and_std():
    x = torch.randn(4, 10, 6) * torch.arange(1.0, 7.0) + 3
    stats = FeatureStats.of(x)
    rows = x.reshape(40, 6).numpy()
    assert torch.allclose(stats.mean, torch.from_numpy(rows.mean(axis=0)), atol=1e-5)
    assert torch.allclose(stats.std, torch.from_numpy(rows.std(axis=0)), atol=1e-5)  # numpy: ddof=0, as the notebook


def test_capture_sees_the_named_modules_input_and_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Sequential(nn.ReLU(), nn.LayerNorm(16)))
    x = torch.randn(32, 8)
    name, module = find_module(model, "1.1")
    assert name == "1.1" and isinstance(module, nn.LayerNorm)
    stats = capture(model, module, x)
    hidden = torch.relu(model[0](x)).detach()
    assert torch.allclose(stats["input"].mean, hidden.mean(0), atol=1e-6)
    normed = torch.nn.functional.layer_norm(hidden, (16,))
    assert torch.allclose(stats["output"].std, normed.std(0, correction=0), atol=1e-5)
    assert abs(stats["output"].mean.mean()) < 1e-5 < abs(stats["input"].mean.mean())  # each row has mean 0 after LN
    assert model.training  # restored after the eval-mode pass


def test_find_module_takes_a_unique_suffix_and_explains_misses():
    model = nn.ModuleDict({"a": nn.ModuleDict({"norm": nn.LayerNorm(2), "proj": nn.Linear(2, 2)}),
                           "b": nn.ModuleDict({"norm": nn.LayerNorm(2)})})
    with pytest.raises(ZooError, match=r"module 'norm' is ambiguous: a.norm, b.norm; give the full dotted name"):
        find_module(model, "norm")
    with pytest.raises(ZooError, match=r"no module 'a.prj'\. Did you mean 'a.proj'\? Its modules: a \(ModuleDict\)"):
        find_module(model, "a.prj")
    assert find_module(model, "proj")[0] == "a.proj" and find_module(model, "b.norm")[0] == "b.norm"


def test_zoo_inspect_a_layer_on_random_input_like_the_notebooks_layernorm_figure(tmp_path):
    out = tmp_path / "ln.png"
    result = run_zoo("inspect", "feed-forward", "--module", "layer_norm", "--input-shape", "4,10,312",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "layer_norm (LayerNorm) in layer feed-forward (untrained, seed 0), standard-normal input (4, 10, 312)"
    output_row = next(line for line in lines if line.startswith("output")).split()
    assert output_row[1] == "312" and abs(float(output_row[2])) < 1e-3
    assert_png(out, (500, 1200))


def test_zoo_inspect_a_trained_model_on_its_own_test_data():
    result = run_zoo("inspect", "mnist-mlp", "--module", "linear_relu_stack.3", "--no-plot", "--batch", "100")
    assert result.returncode == 0, result.stderr
    assert "100 samples of its dataset's test split" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["input"][1] == rows["output"][1] == "256"
    assert float(rows["output"][2]) > 0 and float(rows["output"][5].split("..")[0]) >= 0  # after ReLU


@pytest.mark.parametrize("args, message", [
    (["feed-forward", "--module", "layer_norm"], "layer 'feed-forward' has no trained weights, so no data of its own: give --input-shape"),
    (["mnist-mlp", "--module", "norm", "--no-plot"], "the model has no module 'norm'"),
    (["mnist", "--module", "x", "--input-shape", "2,3"], "nor is 'mnist' a registered layer or model"),
    (["feed-forward", "--module", "layer_norm", "--input-shape", "4,x"], "expected sizes separated by commas"),
    (["mnist-mlp", "--module", "0", "--batch", "0"], "--batch: expected a positive whole number, got '0'"),
    (["feed-forward", "--module", "layer_norm", "--input-shape", "2,7", "--no-plot"],
     "the model fails on input of shape (2, 7) (RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
])
def test_zoo_inspect_errors(args, message):
    result = run_zoo("inspect", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_zoo_inspect_feeds_a_token_model_token_ids():
    result = run_zoo("inspect", "transformer-encoder", "--module", "layers.0.feed_forward.layer_norm",
                     "--input-shape", "2,80", "--no-plot")
    assert result.returncode == 0, result.stderr
    assert "random token ids in [1, 1024) of shape (2, 80)" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith(("input", "output"))}
    assert rows["input"][1] == rows["output"][1] == "312"


def test_sweep_index_lists_variants_in_order(tmp_path):
    runs.write_sweep(tmp_path, "s", [{"label": "lr=0.1", "run": "lr-0.1", "values": {"train.optimizer.lr": 0.1}}])
    (tmp_path / "lr-0.1").mkdir()
    runs.write_history(tmp_path / "lr-0.1", [{"epoch": 1, "train_loss": 1.0}])
    assert json.loads((tmp_path / "sweep.json").read_text())["variants"][0]["run"] == "lr-0.1"
    assert runs.read(tmp_path) == ("s", {"lr=0.1": [{"epoch": 1, "train_loss": 1.0}]})


def test_zoo_inspect_a_weights_file_names_its_figure_after_the_file(run_folder, tmp_path):
    result = run_zoo("inspect", str(run_folder / "weights.safetensors"), "--module", "0", "--batch", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "50 samples of its dataset's test split" in result.stdout.splitlines()[0]
    assert_png(tmp_path / "weights-linear_relu_stack.0.png", (500, 1200))
