"""zoo from Python: timm's names (list_models, create_model), zoo.build and zoo.search returning what
they made, zoo.push returning what it did -- the code paths of the commands, in this process."""

import contextlib
import io
import re

import pytest
import torch
from conftest import REGRESSION, ROOT

import zoo
from zoo.recipe.parse import RecipeError
from zoo.weights.format import read_meta
from zoo.weights.store import builds


def test_list_models_and_create_model_as_timm_names_them():
    assert "mnist-mlp" in zoo.list_models() and zoo.list_models("*attention*", kind="layer") == ["multi-head-attention"]
    assert zoo.list_models("mnist*", pretrained=True) == ["mnist-mlp"]
    published = zoo.create_model("mnist-mlp", pretrained=True)
    loaded = zoo.load("mnist-mlp")
    assert published.zoo_meta == loaded.zoo_meta
    assert all(torch.equal(a, b) for a, b in zip(published.state_dict().values(), loaded.state_dict().values()))
    fresh = zoo.create_model("mnist-mlp", hidden=[32])
    assert fresh(torch.rand(2, 1, 28, 28)).shape == (2, 10) and not hasattr(fresh, "zoo_meta")
    three = zoo.create_model("mnist-mlp", pretrained=True, num_classes=3)  # a new head on the published body
    assert three(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    body = [k for k in loaded.state_dict() if not k.startswith("linear_relu_stack.4.")]
    assert all(torch.equal(three.state_dict()[k], loaded.state_dict()[k]) for k in body)
    with pytest.raises(zoo.ZooError, match=r"create_model\('mnist-mlp', pretrained=True, hidden=\[64\]\) changes what "
                                           r"the published weights fit beyond the head .*linear_relu_stack\.0\.weight "
                                           r"\(312, 784\) -> \(64, 784\)"):
        zoo.create_model("mnist-mlp", pretrained=True, hidden=[64])


def test_build_a_dict_recipe_returns_what_its_weights_file_records(tmp_path):
    recipe = {**REGRESSION, "name": "from-python"}
    built = zoo.build(recipe, overrides=["train.epochs=2"], out=tmp_path / "run", log=lambda line: None)
    meta = read_meta(tmp_path / "run" / "weights.safetensors")
    assert built.folder == tmp_path / "run" and built.weights.is_file() and built.epoch == 2
    assert built.metrics == meta.metrics and built.label == "from-python@1" and built.chosen_epoch is None
    assert zoo.load(built.label).zoo_meta.tensors_sha256 == meta.tensors_sha256
    bad = {**recipe, "train": {**recipe["train"], "epochs": 0}}
    with pytest.raises(RecipeError, match=r"from-python\.yaml:\d+:\d+: train\.epochs: expects a positive integer, "
                                          r"got 0"):
        zoo.build(bad, out=tmp_path / "bad", log=lambda line: None)


def test_search_returns_its_best_trial_and_push_what_it_did(tmp_path):
    pytest.importorskip("optuna")
    recipe = {**REGRESSION, "name": "py-search", "train": {**REGRESSION["train"], "epochs": 1},
              "search": {"trials": 2, "metric": "train_loss", "sampler": "grid", "pruner": "none",
                         "space": {"train.optimizer.lr": [0.01, 0.02]}}}
    found = zoo.search(recipe, out=tmp_path / "search", log=lambda line: None)
    assert found.folder == tmp_path / "search" and found.metric == "train_loss"
    assert found.best.metrics["train_loss"] == found.best_value and found.best.label == "py-search@1"
    assert [b.version for b in builds("py-search")] == [1]
    pushed = zoo.push(found.best.label, str(tmp_path / "repo"))
    assert pushed.changed == ("model.safetensors", "config.json", "README.md", "recipe.yaml")
    assert str(zoo.push(found.best.label, str(tmp_path / "repo"))).endswith("unchanged, nothing written")


def test_the_readme_trains_reads_and_loads_in_three_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippet = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[1]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet, {"zoo": zoo})
    accuracy, label = printed.getvalue().splitlines()[-1].split()
    assert label == "mnist-mlp@1" and 0.5 < float(accuracy) < 1  # three epochs of the main job
    meta = read_meta(tmp_path / "runs" / "mnist-mlp" / "weights.safetensors")
    assert meta.metrics["test_accuracy"] == float(accuracy)
