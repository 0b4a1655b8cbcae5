"""Recipes: loading, the merge rule, interpolation, overrides, and located errors for bad recipes."""

import textwrap
from pathlib import Path

import pytest

import zoo.cli
from zoo.recipe.parse import load
from zoo.recipe.schema import key_paths, validate

BASE = """\
name: tiny
model:
  component: sequential
  layers:
    - {component: linear, in_features: 3, out_features: 4}
    - {component: relu}
    - {component: linear, in_features: 4, out_features: 5}
data:
  dataset: {component: synthetic-regression, n: 64}
  batch_size: 16
train:
  epochs: 2
  optimizer: {component: sgd, lr: 0.01}
  loss: mse
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


def test_extends_merges_maps_replaces_lists_and_deletes(tmp_path):
    write(tmp_path, "base.yaml", BASE + "metrics: [accuracy]\n")
    child = write(tmp_path, "child.yaml", """\
        extends: base.yaml
        name: child
        model:
          layers:
            - {component: linear, in_features: 3, out_features: 5}
        train:
          optimizer: {lr: 0.1, momentum: 0.9}
        metrics: !delete
        """)
    recipe = load(child)
    assert recipe.data["name"] == "child"
    assert recipe.data["model"]["component"] == "sequential"  # maps merge
    assert len(recipe.data["model"]["layers"]) == 1  # lists replace
    assert recipe.data["train"]["optimizer"] == {"component": "sgd", "lr": 0.1, "momentum": 0.9}
    assert "metrics" not in recipe.data
    assert str(recipe.mark(("train", "optimizer", "lr"))).startswith(f"{tmp_path / 'child.yaml'}:7:")
    assert str(recipe.mark(("data", "batch_size"))) == f"{tmp_path / 'base.yaml'}:10:3"
    assert recipe.files == ((tmp_path / "child.yaml").resolve(), (tmp_path / "base.yaml").resolve())


def test_interpolation_keeps_types_and_formats_text(tmp_path):
    path = write(tmp_path, "r.yaml", BASE.replace("n: 64", "n: '${data.batch_size}'")
                 + 'description: "batches of ${data.batch_size}, lr ${train.optimizer.lr}, $${literal}"\n')
    recipe = load(path)
    assert recipe.data["data"]["dataset"]["n"] == 16
    assert recipe.data["description"] == "batches of 16, lr 0.01, ${literal}"


def test_set_overrides_parse_yaml_scalars_before_interpolation(tmp_path):
    path = write(tmp_path, "r.yaml", BASE.replace("n: 64", "n: '${data.batch_size}'"))
    recipe = load(path, ["data.batch_size=8", "train.optimizer.lr=1e-3", "train.seed=3", "data.shuffle=false"],
                  known=key_paths())
    assert recipe.data["data"]["dataset"]["n"] == 8
    assert recipe.data["train"]["optimizer"]["lr"] == 0.001
    settings = validate(recipe)
    assert (settings.train.seed, settings.data.shuffle) == (3, False)
    assert str(recipe.mark(("train", "seed"))) == "--set train.seed=3"


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    recipe = load(write(tmp_path, "r.yaml", BASE.replace("lr: 0.01", "lr: 1e-4")))
    assert recipe.data["train"]["optimizer"]["lr"] == 1e-4


def test_defaults_are_filled_in(tmp_path):
    settings = validate(load(write(tmp_path, "r.yaml", BASE)))
    assert settings.train.device == "auto" and settings.train.compile is False and settings.train.seed == 0
    assert settings.data.shuffle is True and settings.data.eval_split == "test"


# (name, recipe text, extra --set args, needle on the offending line or None, key path, message)
MALFORMED = [
    ("yaml-syntax", BASE.replace("batch_size: 16", "batch_size: [16"), [], "[16", None, "YAML syntax error"),
    ("unknown-component", BASE.replace("component: relu", "component: rellu"), [], "rellu",
     "model.layers[1].component", "unknown model or layer 'rellu'. Did you mean 'relu'?"),
    ("misspelt-parameter", BASE.replace("in_features: 4,", "in_featres: 4,"), [], "in_featres",
     "model.layers[2].in_featres", "unknown parameter 'in_featres'. Did you mean 'in_features'?"),
    ("wrong-type", BASE.replace("out_features: 5}", "out_features: '5'}"), [], "out_features: '5'",
     "model.layers[2].out_features", "parameter 'out_features' expects int, got str '5'"),
    ("missing-key", BASE.replace("  epochs: 2\n", ""), [], "train:", "train", "missing required key 'epochs'"),
    ("bad-interpolation", BASE.replace("n: 64", "n: '${data.size}'"), [], "${data.size}",
     "data.dataset.n", "${data.size} refers to data.size, which the recipe does not have"),
    ("interpolation-cycle", BASE.replace("n: 64", "n: '${data.batch_size}'").replace("batch_size: 16", "batch_size: '${data.dataset.n}'"),
     [], "batch_size: '${data.dataset.n}'", "data.batch_size",
     "interpolation cycle: data.dataset.n -> data.batch_size -> data.dataset.n"),
    ("incompatible-shapes", BASE.replace("in_features: 4, out_features: 5", "in_features: 6, out_features: 5"), [],
     "in_features: 6", "model.layers[2]", "the model fails on a batch: 2 (Linear) got input (16, 4)"),
    ("unknown-split", BASE.replace("  batch_size: 16", "  batch_size: 16\n  train_split: valid"), [], "train_split",
     "data.train_split", "parameter 'split' expects Literal['train', 'test'], got str 'valid'"),
    ("negative-epochs", BASE.replace("epochs: 2", "epochs: -1"), [], "epochs", "train.epochs",
     "expects a positive integer, got -1"),
    ("unknown-set-key", BASE, ["train.epoch=3"], None, None, "--set train.epoch=3: unknown key train.epoch"),
    ("unknown-top-key", BASE + "trian: {}\n", [], "trian", "trian", "unknown key 'trian'. Did you mean 'train'?"),
    ("duplicate-key", BASE + "name: again\n", [], "name: again", "name", "duplicate key 'name'"),
    ("python-tag", BASE.replace("n: 64", "n: !!python/object/apply:os.system ['echo hacked']"), [], "python/object",
     "data.dataset.n", "tag tag:yaml.org,2002:python/object/apply:os.system is not allowed"),
    ("wrong-kind", BASE.replace("loss: mse", "loss: adam"), [], "loss: adam", "train.loss",
     "'adam' is an optimizer; here a loss is expected"),
    ("loss-mismatch", BASE.replace("out_features: 5}", "out_features: 5}\n    - {component: linear, in_features: 5, out_features: 2}"),
     [], "loss: mse", "train.loss", "cannot compare the model's output (16, 2) with the targets (16, 5): Using a target size"),
    ("bad-dataset-param", BASE.replace("n: 64", "n: many"), [], "n: many", "data.dataset.n",
     "parameter 'n' expects int, got str 'many'"),
    ("not-a-component", BASE.replace("  optimizer: {component: sgd, lr: 0.01}", "  optimizer: 0.01"), [], "optimizer: 0.01",
     "train.optimizer", "expects a component"),
    ("unknown-device", BASE.replace("epochs: 2", "epochs: 2\n  device: tpu"), [], "device: tpu", "train.device",
     "expects auto, cpu, mps, cuda or cuda:N"),
    ("supplied-param", BASE.replace("{component: sgd, lr: 0.01}", "{component: sgd, lr: 0.01, params: []}"), [],
     "params: []", "train.optimizer.params", "'params' is supplied by zoo; remove it here"),
    ("bad-set-value", BASE, ["data.batch_size=[1"], None, None, "--set data.batch_size=[1: data.batch_size: value is not valid YAML"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_recipes_fail_with_file_line_and_key_path(case, tmp_path, capsys):
    _, text, sets, needle, key_path, message = case
    path = write(tmp_path, "recipe.yaml", text)
    args = ["check", str(path)] + [a for s in sets for a in ("--set", s)]
    assert zoo.cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zoo: error: "), err
    assert "Traceback" not in err
    if needle is not None:
        assert f"{path}:{line_of(text, needle)}:" in err, err
    if key_path is not None:
        assert f": {key_path}: " in err, err
    assert message in err, err


def test_cyclic_extends_is_an_error(tmp_path, capsys):
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    assert zoo.cli.main(["check", str(tmp_path / "a.yaml")]) == 2
    assert "extends forms a cycle: a.yaml -> b.yaml -> a.yaml" in capsys.readouterr().err


def test_errors_from_a_base_recipe_point_into_the_base_file(tmp_path, capsys):
    base = BASE.replace("out_features: 5}", "out_features: five}")
    write(tmp_path, "base.yaml", base)
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\n")
    assert zoo.cli.main(["check", str(child)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'base.yaml'}:{line_of(base, 'five')}:" in err
    assert "model.layers[2].out_features" in err


def test_extends_of_a_missing_file_points_at_the_extends_line(tmp_path, capsys):
    path = write(tmp_path, "r.yaml", "name: r\nextends: nowhere.yaml\n")
    assert zoo.cli.main(["check", str(path)]) == 2
    assert f"{path}:2:1: extends: extends 'nowhere.yaml': no such file" in capsys.readouterr().err


def test_check_prints_each_layer_with_shape_and_parameters(tmp_path, capsys):
    assert zoo.cli.main(["check", str(write(tmp_path, "r.yaml", BASE))]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["0"][1:] == ["Linear", "(16,", "4)", "16"]
    assert lines["2"][1:] == ["Linear", "(16,", "5)", "25"]
    assert "total parameters: 41" in out
    assert "64 training samples (train), 64 evaluation samples (test); 4 batches of 16" in out


def test_shipped_recipes_all_pass_check(capsys):
    from zoo.recipe.catalog import recipe_entries

    names = sorted(recipe_entries(zoo.default_registry()))
    assert {"mnist-mlp", "fashion-mnist-mlp", "simple-net-batch-sweep", "transformer-encoder-reverse"} <= set(names)
    for name in names:
        if name.startswith("fashion-mnist") and not Path("/usr/share/datasets/fashion-mnist").is_dir():
            continue
        if name == "timm-finetune":  # its weights are on the Hub: test_bridges checks it against the fake one
            continue
        assert zoo.cli.main(["check", name]) == 0, capsys.readouterr().err
