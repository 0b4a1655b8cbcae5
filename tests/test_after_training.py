"""After training: starting from trained weights (init, freeze, parameter groups), predicting on raw
input, exporting, and the model card."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_MLP, build, run_zoo, write_recipe
from safetensors.torch import load_file

import zoo
from zoo.recipe import catalog
from zoo.weights.spec import InputSpec
from zoo.weights.format import read_meta

FASHION = Path("/usr/share/datasets/fashion-mnist")
SHIPPED = Path(zoo.__file__).parent / "pretrained" / "mnist-mlp.safetensors"

# mnist-mlp's architecture with a 20-way head: everything but the head fits the catalog weights
NEW_HEAD = SMALL_MLP.replace("  hidden: [64]", "  num_classes: 20").replace("  log_every: 10", """\
  log_every: 10
  init: mnist-mlp
  init_skip: ["linear_relu_stack.4.*"]""")


def published(name: str) -> catalog.Entry:
    return catalog.get(name, zoo.default_registry())


def quiet(recipe, out, *overrides):
    return build(str(recipe), list(overrides), out=out, disable=["progress"], log=lambda s: None)


def test_fine_tuning_with_a_new_head_reports_the_skipped_keys_and_trains(tmp_path):
    recipe = write_recipe(tmp_path, NEW_HEAD, epochs=1, batch=100)
    out = tmp_path / "run"
    result = run_zoo("build", str(recipe), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    sha256 = published("mnist-mlp").sha256
    assert re.search(rf"init: loaded 4 of the model's 6 tensors from mnist-mlp \(.*mnist-mlp.safetensors, sha256 "
                     rf"{sha256[:12]}\.\.\.\)", result.stdout), result.stdout
    assert re.search(r"linear_relu_stack.4.weight +skipped: shape differs +model \(20, 256\), file \(10, 256\)",
                     result.stdout)
    report = json.loads((out / "init.json").read_text())
    assert report["loaded"] == ["linear_relu_stack.0.weight", "linear_relu_stack.0.bias",
                                "linear_relu_stack.2.weight", "linear_relu_stack.2.bias"]
    assert [m[0] for m in report["mismatched"]] == ["linear_relu_stack.4.weight", "linear_relu_stack.4.bias"]
    meta = read_meta(out / "weights.safetensors")
    assert meta.init.sha256 == published("mnist-mlp").sha256 and meta.init.loaded == 4
    assert meta.metrics["test_accuracy"] > 0.9  # the digits features carried over; one epoch trains the head


def test_frozen_parameters_stay_bit_identical_and_groups_get_their_own_settings(tmp_path):
    text = NEW_HEAD.replace("  init_skip:", """\
  freeze: ["linear_relu_stack.0.*"]
  param_groups: [{params: "linear_relu_stack.2.*", lr: 0.0}]
  init_skip:""")
    out = tmp_path / "run"
    quiet(write_recipe(tmp_path, text, epochs=2, batch=100), out)
    trained, start = load_file(str(out / "weights.safetensors")), load_file(str(SHIPPED))
    for key in ("linear_relu_stack.0.weight", "linear_relu_stack.0.bias",  # frozen
                "linear_relu_stack.2.weight", "linear_relu_stack.2.bias"):  # learning rate 0
        assert torch.equal(trained[key], start[key]), key
    assert trained["linear_relu_stack.4.weight"].shape == (20, 256)
    assert read_meta(out / "weights.safetensors").frozen == ("linear_relu_stack.0.*",)


@pytest.mark.parametrize("old, new, key, message", [
    ('  init_skip: ["linear_relu_stack.4.*"]\n', "", "init",
     r"train.init: mnist-mlp does not fit the model: linear_relu_stack.4.weight has shape \(20, 256\) in the model, "
     r"\(10, 256\) in the file; linear_relu_stack.4.bias has shape \(20,\) in the model, \(10,\) in the file. Allow "
     r"what the recipe changes with train.init_skip \(glob patterns, e.g. 'linear_relu_stack.4.\*'\)"),
    ("  init: mnist-mlp", "  init: mnist-mpl", "init",
     r"train.init: no model 'mnist-mpl' in the catalog. Did you mean 'mnist-mlp'"),
    ('["linear_relu_stack.4.*"]', '["head.*"]', "init_skip",
     r"train.init_skip\[0\]: 'head.\*' matches no parameter of the model \(they are named like linear_relu_stack.0.weight"),
])
def test_an_init_that_does_not_fit_is_refused_at_check_with_its_line(tmp_path, old, new, key, message):
    path = write_recipe(tmp_path, NEW_HEAD.replace(old, new), epochs=1, batch=100)
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if t.startswith(f"  {key}:"))
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(rf"recipe.yaml:{line}:\d+: {message}", result.stderr), result.stderr


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_shipped_fine_tuning_recipe_beats_random_init_at_the_same_budget(tmp_path):
    result = run_zoo("build", "fashion-mnist-finetune", "--out", str(tmp_path / "sweep"), "--no-progress",
                     "--set", "train.epochs=3")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: float(line.split()[-1]) for line in result.stdout.splitlines()
            if line.startswith(("mnist-mlp ", "None "))}
    assert rows["mnist-mlp"] > rows["None"] + 0.01, rows


# --- prediction ---

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The first 40 MNIST test images written as PNG files (their true size), and a few resized."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("digits")
    images, labels = zoo.create("mnist", split="test").tensors()
    paths = []
    for i in range(40):
        path = folder / f"{i:02d}.png"
        Image.fromarray(images[i, 0].numpy()).save(path)
        paths.append(path)
    Image.fromarray(images[0, 0].numpy()).resize((112, 112)).convert("RGB").save(folder / "big.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    np.save(folder / "one.npy", images[1, 0].numpy())
    np.save(folder / "small.npy", np.zeros((5, 5), dtype=np.float32))
    return folder, paths


def test_predict_on_png_files_gives_the_classes_of_a_forward_pass(digits):
    folder, paths = digits
    result = run_zoo("predict", "mnist-mlp", *map(str, paths), "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    predicted = [int(r["top"][0]["label"]) for r in json.loads(result.stdout)]
    x, _ = zoo.create("mnist", split="test").batch(torch.arange(40))
    with torch.no_grad():
        logits = zoo.load("mnist-mlp")(x)
    assert predicted == logits.argmax(-1).tolist()
    first = json.loads(result.stdout)[0]["top"]
    assert first[0]["probability"] == pytest.approx(logits[0].softmax(-1).max().item(), abs=1e-5)
    text = run_zoo("predict", "mnist-mlp", str(paths[0]), str(folder / "big.jpg"), str(folder / "one.npy")).stdout
    assert [line.split()[1] for line in text.splitlines()] == [str(predicted[0]), str(predicted[0]), str(predicted[1])]


def test_an_input_unlike_the_training_data_gets_a_warning(digits, tmp_path):
    folder, paths = digits
    from PIL import Image, ImageOps

    ImageOps.invert(Image.open(paths[0])).save(tmp_path / "inverted.png")  # black on white
    result = run_zoo("predict", "mnist-mlp", str(paths[0]), str(tmp_path / "inverted.png"), "--json")
    assert result.returncode == 0, result.stderr
    normal, inverted = json.loads(result.stdout)
    assert "warning" not in normal
    assert inverted["warning"] == ("input looks inverted relative to the training data (they are light on a dark "
                                   "background)")
    assert f"zoo: warning: {tmp_path / 'inverted.png'}: input looks inverted" in result.stderr
    x, _ = zoo.create("mnist", split="test").batch(torch.arange(1000))
    assert not [r for r in zoo.predict("mnist-mlp", x) if "warning" in r]  # no real digit is flagged
    card = run_zoo("card", "mnist-mlp", "--no-verify").stdout
    assert "The training images average 0.131 (standard deviation 0.309): light strokes on a dark background" in card


def test_predict_in_python_takes_arrays_token_lists_single_or_batched():
    model = zoo.load("mnist-mlp")
    x, y = zoo.create("mnist", split="test").tensors()
    single = zoo.predict(model, x[0, 0].numpy(), top_k=1)  # one uint8 (28, 28) image
    batch = zoo.predict(model, x[:3].numpy())
    assert len(single) == 1 and [b["top"][0]["index"] for b in batch][0] == single[0]["top"][0]["index"]
    assert model.zoo_meta.input.shape == (1, 28, 28) and model.zoo_meta.classes[7] == "7"
    [reversed_] = zoo.predict("transformer-encoder-reverse", [3, 5, 7, 9, 11, 13])
    assert reversed_["tokens"] == [13, 11, 9, 7, 5, 3] and min(reversed_["probabilities"]) > 0.5
    assert len(zoo.predict("transformer-encoder-reverse", [[3, 5, 7, 9], [2, 4, 6, 8, 10]])) == 2


@pytest.mark.parametrize("model, given, message", [
    ("mnist-mlp", "broken.png", r"broken.png: cannot decode the image: Truncated File Read$"),
    ("mnist-mlp", "3,5,7", r"3,5,7: the model takes an image of shape \(1, 28, 28\) \(float32\), not token ids"),
    ("mnist-mlp", "missing.png", r"missing.png: no such file"),
    ("transformer-encoder-reverse", "3,5,99", r"3,5,99: token id 99 is outside the vocabulary \(0..15\)"),
    ("transformer-encoder-reverse", "00.png", r"00.png: the model takes token ids in 0..15, at most 12 per input"),
    ("transformer-encoder-reverse", ",".join(["3"] * 13), r"expects token ids in 0..15, at most 12 per input .*got 13"),
    ("mnist-mlp", "small.npy", r"small.npy: expects an image of shape \(1, 28, 28\) \(float32\), got shape \(5, 5\)"),
])
def test_bad_prediction_input_is_one_line(digits, model, given, message):
    folder, _ = digits
    result = run_zoo("predict", model, given, cwd=folder)
    said, error = result.stderr.splitlines()  # which weights, then the one-line error
    assert result.returncode == 2 and said.startswith(f"zoo: weights {model} (published in the catalog, sha256 ")
    assert re.search(message, error), result.stderr


def test_weights_that_record_no_input_spec_are_refused_without_building_their_dataset(tmp_path, monkeypatch):
    import socket

    from conftest import raw_meta, rewrite_meta

    old = tmp_path / "old.safetensors"
    meta = raw_meta(SHIPPED)
    del meta["input"]
    meta["recipe"]["data"]["dataset"] = {"component": "mnist", "download": True, "mirror": "http://192.0.2.1/"}
    rewrite_meta(SHIPPED, old, meta)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("predicting opened a connection"))
    x, _ = zoo.create("mnist", split="test").batch(torch.arange(3))
    with pytest.raises(zoo.ZooError, match=r"old.safetensors: records no input spec \(what one input is\)"):
        zoo.predict(str(old), x)


def test_trained_weights_record_their_input_spec_and_labels(tmp_path):
    out = tmp_path / "run"
    quiet(write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=500), out)
    meta = read_meta(out / "weights.safetensors")
    assert meta.input == InputSpec("image", (1, 28, 28), "float32", mode="L", range=(0.0, 1.0))
    assert meta.classes == tuple(str(d) for d in range(10))


# --- export ---

NO_ONNX = """\
import sys


class NoOnnx:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnx", "onnxscript", "onnxruntime"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)", name=name)


sys.meta_path.insert(0, NoOnnx())
"""


def _has_export_extra() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


FORMATS = [pytest.param("onnx", marks=pytest.mark.skipif(not _has_export_extra(),
                                                         reason="the export extra (onnx, onnxscript, onnxruntime) "
                                                                "is not installed: pip install -e '.[export]'")),
           "torch-export", "torchscript"]


@pytest.mark.parametrize("name", ["mnist-mlp", "transformer-encoder-reverse"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_both_seed_architectures_export_and_pass_parity(tmp_path, name, fmt):
    result = run_zoo("export", name, "--format", fmt, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    difference = float(re.search(r"max abs difference (\S+) \(tolerance 0.0001\)", result.stdout).group(1))
    assert difference <= 1e-4
    [exported] = [p for p in tmp_path.iterdir() if p.is_file() and not p.name.endswith(".json")]
    facts = json.loads(exported.with_name(exported.name + ".json").read_text())
    assert facts["format"] == fmt and facts["source"]["sha256"] == published(name).sha256
    assert facts["parity"]["max_abs_diff"] == pytest.approx(difference, rel=0.05) and facts["input"]["batch"] == "dynamic (dimension 0)"
    # the file runs on its own, on a batch size the export never saw
    model = zoo.load(name)
    from zoo.use.export import samples

    x = samples(model.zoo_meta.input, 5, seed=42)
    with torch.no_grad():
        expected = model(x)
    got = zoo.create(fmt, kind="exporter").read(exported)(x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_an_export_runs_the_recipes_evaluation_transforms(tmp_path):
    text = SMALL_MLP.replace("  batch_size: BATCH", "  batch_size: BATCH\n  transform: [{component: normalize, "
                                                      "mean: 0.1307, std: 0.3081}]")
    out = tmp_path / "run"
    quiet(write_recipe(tmp_path, text, epochs=1, batch=500), out)
    result = run_zoo("export", str(out / "weights.safetensors"), "--format", "torch-export", "--out",
                     str(tmp_path / "m.pt2"))
    assert result.returncode == 0, result.stderr
    exported = torch.export.load(str(tmp_path / "m.pt2")).module()
    x, _ = zoo.create("mnist", split="test").batch(torch.arange(4))
    model = zoo.load(out / "weights.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model((x - 0.1307) / 0.3081))  # raw pixels in, as predict takes them


def test_export_without_the_extra_or_with_a_bad_format_is_one_line(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_ONNX)
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = run_zoo("export", "mnist-mlp", "--format", "onnx", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == ("zoo: error: exporting to onnx needs onnx, which is not installed: "
                                              "pip install -e '.[export]' (onnx, onnxscript, onnxruntime) in a zoo checkout")
    assert not list(tmp_path.glob("*.onnx*"))
    bad = run_zoo("export", "mnist-mlp", "--format", "tflite", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr == ("zoo: error: unknown exporter 'tflite'. Run 'zoo list --kind "
                                                  "exporter' to see them all.\n")


# --- model card ---

PLACEHOLDERS = ("More Information Needed", "TODO", "TBD", "N/A", "None", "unknown", "{{")


def test_the_card_of_a_catalog_model_holds_its_verified_metric_and_no_placeholder():
    result = run_zoo("card", "mnist-mlp")
    assert result.returncode == 0, result.stderr
    card = result.stdout
    entry = published("mnist-mlp")
    assert card.startswith("# mnist-mlp\n") and f"{entry.params:,} parameters" in card
    assert re.search(rf"\| accuracy \| mnist test \| {entry.metrics[0].value:.4f} \| 0\.9\d{{3}} \| ok \|", card)
    assert f"`{entry.sha256}`" in card and entry.license in card and "Labels (10): 0 `0`" in card
    prose = re.sub(r"```yaml.*?```", "", card, flags=re.S)  # the recipe block may hold YAML lists
    assert not [p for p in PLACEHOLDERS if p in prose]


def test_the_card_of_a_fine_tuned_build_says_where_it_started(tmp_path):
    out = tmp_path / "run"
    quiet(write_recipe(tmp_path, NEW_HEAD, epochs=1, batch=500), out)
    card = run_zoo("card", str(out / "weights.safetensors"), "--out", str(tmp_path / "card.md"))
    assert card.returncode == 0, card.stderr
    text = (tmp_path / "card.md").read_text()
    assert f"Started from `mnist-mlp` (sha256 `{published('mnist-mlp').sha256}`): 4 tensors loaded." in text
    assert "`linear_relu_stack.4.weight` (model (20, 256), file (10, 256))" in text
    assert "## License" not in text  # no fact about a local build's license: no section
    prose = re.sub(r"```yaml.*?```", "", text, flags=re.S)
    assert not [p for p in PLACEHOLDERS if p in prose]
