"""The example plugin's own tests, written with zoo.testing. Run them with the plugin installed:
pytest tests/ (zoo's pytest plugin provides the zoo_home fixture)."""

import json
from pathlib import Path

import torch

import zoo
from zoo.testing import check_component, tiny_build



def test_the_layer_and_the_model_pass_zoos_conformance_check():
    check_component("gated-linear")
    check_component("glu-net")


def test_the_transform_keeps_batches_and_is_off_at_evaluation():
    jitter = zoo.create("jitter", std=0.1)
    x, y = torch.zeros(16, 2), torch.arange(16)
    moved, same = jitter(x, y, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and same is y and moved.abs().sum() > 0
    assert torch.equal(jitter(x, y, None)[0], x)


def test_the_recipe_trains_in_an_isolated_home(zoo_home, tmp_path):
    import zoo_example

    recipe = Path(zoo_example.__file__).parent / "recipes" / "two-spirals-glu.yaml"
    run = tiny_build(recipe, tmp_path, "train.epochs=3")
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_accuracy"] > 0.6 and "test_balanced_accuracy" in last
    assert (zoo_home / "models" / "two-spirals-glu").is_dir()  # the build went to this test's home
