"""Transforms and dataset wrappers as components: what each built-in does to a batch, seeding and
mid-epoch resume, a third-party transform used through the CLI, and located errors."""

import json
import math
import re
import subprocess

import pytest
import torch
from conftest import BIN, SMALL_MLP, run_zoo, write_recipe
from safetensors.torch import load_file

import zoo
from zoo.assembly.transforms import Pipeline, Step, batch_generator

def make(name, **params):
    return zoo.create(name, **params)


def images(n=64, seed=0):
    return torch.rand(n, 1, 12, 10, generator=torch.Generator().manual_seed(seed)) + 0.5  # no zeros


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_normalize_per_channel_and_scalar():
    x = torch.rand(8, 3, 4, 4, generator=g())
    y = torch.arange(8)
    out, same_y = make("normalize", mean=[0.1, 0.2, 0.3], std=[0.5, 1.0, 2.0])(x, y, None)
    assert same_y is y
    for c, (m, s) in enumerate([(0.1, 0.5), (0.2, 1.0), (0.3, 2.0)]):
        assert torch.allclose(out[:, c], (x[:, c] - m) / s)
    assert torch.allclose(make("normalize", mean=0.1307, std=0.3081)(x, y, None)[0], (x - 0.1307) / 0.3081)


def test_random_shift_moves_each_image_by_at_most_pad_pixels_filling_zeros():
    x = images()
    out, _ = make("random-shift", pad=2)(x, torch.zeros(64), g())
    seen = set()
    for image, shifted in zip(x[:, 0], out[:, 0]):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(shifted, _shift(image, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10  # each sample its own shift, not one for the batch


def _shift(image, dy, dx):
    """``image`` moved down ``dy`` and right ``dx`` pixels, zeros coming in: computed independently."""
    h, w = image.shape
    out = torch.zeros_like(image)
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = image[max(0, -dy):h - max(0, dy),
                                                                      max(0, -dx):w - max(0, dx)]
    return out


def test_horizontal_flip_mirrors_about_p_of_the_images():
    x = images(2000)
    out, _ = make("horizontal-flip", p=0.3)(x, torch.zeros(2000), g())
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and not bool((flipped & kept).any())
    assert 0.26 < flipped.float().mean().item() < 0.34


def test_random_erasing_blanks_one_rectangle_of_the_declared_size():
    x = images(500)
    out, _ = make("random-erasing", p=0.5, scale=[0.1, 0.2], ratio=[0.5, 2.0], value=0.0)(x, torch.zeros(500), g())
    erased = 0
    for image, result in zip(x[:, 0], out[:, 0]):
        changed = result != image
        if not changed.any():
            continue
        erased += 1
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all()) and int(changed.sum()) == box.numel()  # one solid rectangle
        assert bool((result[changed] == 0).all())
        assert 0.07 * 120 <= box.numel() <= 0.25 * 120  # area share in scale, give or take rounding
    assert 200 < erased < 300


def test_token_dropout_masks_real_tokens_only():
    tokens = torch.randint(1, 50, (200, 30), generator=g())
    tokens[:, 20:] = 0  # padding
    out, _ = make("token-dropout", p=0.25, mask_id=99, pad_id=0)(tokens, torch.zeros(200), g())
    assert torch.equal(out[:, 20:], tokens[:, 20:])
    masked = out[:, :20] == 99
    assert torch.equal(out[:, :20][~masked], tokens[:, :20][~masked])
    assert 0.22 < masked.float().mean().item() < 0.28


@pytest.mark.parametrize("name", ["random-shift", "horizontal-flip", "random-erasing", "token-dropout",
                                  "random-resized-crop"])
def test_augmentations_leave_evaluation_batches_unchanged(name):
    x = torch.randint(1, 9, (16, 1, 8, 8)) if name == "token-dropout" else images(16)
    out, _ = make(name)(x, torch.zeros(16), None)
    assert torch.equal(out, x)


def test_random_resized_crop_cuts_and_resizes_each_image_as_torchvision_does():
    tv = pytest.importorskip("torchvision")
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) / 6144
    generator = torch.Generator().manual_seed(3)
    out, _ = make("random-resized-crop", scale=(0.25, 0.5))(x, torch.zeros(2), generator)
    assert out.shape == x.shape and not torch.equal(out, x)
    replay = torch.Generator().manual_seed(3)  # the same boxes, cut by torchvision's own functional
    for one, got in zip(x, out):
        for _ in range(10):
            u = torch.rand(4, generator=replay).tolist()
            area = 1024 * (0.25 + 0.25 * u[0])
            aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[1])
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= 32 and 0 < h <= 32:
                break
        top, left = int(u[2] * (32 - h + 1)), int(u[3] * (32 - w + 1))
        assert 0.2 * 1024 <= h * w <= 0.55 * 1024  # the area share asked for, give or take the rounding
        expected = tv.transforms.v2.functional.resized_crop(one, top, left, h, w, [32, 32], antialias=True)
        assert torch.equal(got, expected)
    with pytest.raises(zoo.ZooError, match="scale must be 0 < low <= high <= 1"):
        make("random-resized-crop", scale=(0.5, 0.2))


def test_the_batch_generator_is_a_function_of_seed_epoch_step_and_rank():
    pipeline = Pipeline(tuple(Step(n, "here", make(n)) for n in ("random-shift", "random-erasing")))
    x, y = images(32), torch.arange(32)

    def batch(*where):
        return pipeline(x.clone(), y, batch_generator(torch.device("cpu"), *where))[0]

    assert torch.equal(batch(0, 1, 5), batch(0, 1, 5))
    assert not torch.equal(batch(0, 1, 5), batch(0, 1, 6))
    assert not torch.equal(batch(0, 1, 5), batch(0, 2, 5))
    assert not torch.equal(batch(0, 1, 5), batch(1, 1, 5))
    assert not torch.equal(batch(0, 1, 5, 0), batch(0, 1, 5, 1))
    # a new process draws the same numbers (CPython hashes tuples of ints without a random salt)
    code = ("import torch; from zoo.assembly.transforms import batch_generator; "
            "print(torch.rand(3, generator=batch_generator(torch.device('cpu'), 0, 1, 5)).tolist())")
    other = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == torch.rand(3, generator=batch_generator(torch.device("cpu"), 0, 1, 5)).tolist()


AUGMENTED = SMALL_MLP.replace("  batch_size: BATCH", """\
  batch_size: BATCH
  transform:
    - {component: normalize, mean: 0.1307, std: 0.3081}
    - {component: random-shift, pad: 2}
    - {component: random-erasing, p: 0.5}
    - {component: horizontal-flip, p: 0.2}""")


def test_a_run_with_transforms_resumed_mid_epoch_has_the_weights_of_an_uninterrupted_one(tmp_path, extras):
    text = AUGMENTED.replace("  log_every: 10", "  log_every: 10\n  callbacks: [{component: event-log, path: LOG}]")
    recipe = write_recipe(tmp_path, text, epochs=2, batch=100, log=tmp_path / "events.jsonl")
    straight, resumed, plain = tmp_path / "straight", tmp_path / "resumed", tmp_path / "plain"
    assert run_zoo("build", str(recipe), "--out", str(straight), "--no-progress", env=extras).returncode == 0
    stopped = run_zoo("build", str(recipe), "--out", str(resumed), "--no-progress",
                      env={**extras, "EVENT_LOG_INTERRUPT": "2:7"})
    assert stopped.returncode == 130, stopped.stderr
    again = run_zoo("build", str(recipe), "--out", str(resumed), "--resume", "--no-progress", env=extras)
    assert again.returncode == 0, again.stderr
    assert "resuming small-mlp at epoch 2, batch 7" in again.stdout
    a, b = load_file(str(straight / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and the transforms did act: the same recipe without them trains other weights
    bare = write_recipe(tmp_path, SMALL_MLP, epochs=2, batch=100)
    assert run_zoo("build", str(bare), "--out", str(plain), "--no-progress").returncode == 0
    c = load_file(str(plain / "weights.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_plugins_transform_changes_what_the_model_learns(tmp_path, extras):
    """shift-labels relabels training batches as the next class; evaluation is left alone."""
    text = SMALL_MLP.replace("  batch_size: BATCH", """\
  batch_size: BATCH
  transform: [{component: shift-labels, by: 1}]
  eval_transform: []""")
    out = tmp_path / "run"
    result = run_zoo("build", str(write_recipe(tmp_path, text, epochs=2, batch=100)), "--out", str(out),
                     "--no-progress", env=extras)
    assert result.returncode == 0, result.stderr
    accuracy = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["test_accuracy"]
    model = zoo.load(out / "weights.safetensors")
    x, y = zoo.create("mnist", split="test").batch(torch.arange(10_000))
    with torch.no_grad():
        predicted = model(x).argmax(-1)
    assert accuracy == pytest.approx((predicted == y).float().mean().item(), abs=1e-4)
    assert accuracy < 0.1 and (predicted == (y + 1) % 10).float().mean().item() > 0.8


def recipe_line(path, text):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("transform, message", [
    ("[normalise]", r"data.transform\[0\]: unknown transform 'normalise'. Did you mean 'normalize'"),
    ("[accuracy]", r"data.transform\[0\]: 'accuracy' is a metric; here a transform is expected"),
    ("[{component: normalize, mean: [0.1, 0.2], std: [1, 1]}]",
     r"data.transform\[0\]: transform 'normalize': 2 means and stds for inputs of shape \(1, 28, 28\)"),
    ("[token-dropout]", r"data.transform\[0\]: transform 'token-dropout': expects integer token ids"),
    ("[normalize-mnist, {component: shift-labels, misbehave: batch-size}]",
     r"data.transform\[1\]: transform 'shift-labels' changed the inputs from \(100, 1, 28, 28\) float32 to "
     r"\(99, 1, 28, 28\) float32; a transform keeps the batch size and the dtype"),
    ("[{component: shift-labels, misbehave: dtype}]",
     r"data.transform\[0\]: transform 'shift-labels' changed the targets from \(100,\) int64 to \(100,\) float32"),
])
def test_bad_transforms_are_located_errors(tmp_path, extras, transform, message):
    transform = transform.replace("normalize-mnist", "{component: normalize, mean: 0.13, std: 0.31}")
    path = write_recipe(tmp_path, SMALL_MLP.replace("  batch_size: BATCH", f"  batch_size: BATCH\n  transform: {transform}"),
                        epochs=1, batch=100)
    for args in (["check", str(path)], ["build", str(path), "--out", str(tmp_path / "run")]):
        result = run_zoo(*args, env=extras)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert re.search(rf"recipe.yaml:{recipe_line(path, 'transform:')}:\d+: {message}", result.stderr), result.stderr


# --- dataset wrappers ---

def test_subset_and_random_split_are_seeded_disjoint_and_complete():
    mnist = zoo.create("mnist", split="test")
    inputs, targets = mnist.tensors()
    few = make("subset", dataset=mnist, split="test", count=300, seed=1)
    again = make("subset", dataset=mnist, split="test", count=300, seed=1)
    assert len(few) == 300 and torch.equal(few.tensors()[0], again.tensors()[0])
    assert not torch.equal(few.tensors()[0], make("subset", dataset=mnist, split="test", count=300, seed=2).tensors()[0])
    assert len(make("subset", dataset=mnist, split="test", fraction=0.25)) == 2500
    assert make("subset", dataset=mnist, split="test", count=300, splits=["train"]) is mnist  # other splits whole
    parts = {"train": 0.7, "val": 0.2, "rest": 0.1}
    split = {name: make("random-split", dataset=mnist, split=name, parts=parts, seed=3) for name in parts}
    assert [len(split[n]) for n in parts] == [7000, 2000, 1000]
    rows = {name: {bytes(row.numpy()) + bytes([int(t)]) for row, t in zip(*d.tensors())} for name, d in split.items()}
    assert not rows["train"] & rows["val"] and not rows["val"] & rows["rest"]
    everything = {bytes(row.numpy()) + bytes([int(t)]) for row, t in zip(inputs, targets)}
    assert rows["train"] | rows["val"] | rows["rest"] == everything
    assert split["val"].divide_by == 255 and split["val"].info["classes"] == mnist.info["classes"]


def test_concat_joins_in_memory_and_transformed_applies_once():
    train, test = zoo.create("mnist", split="train"), zoo.create("mnist", split="test")
    joined = make("concat", datasets=[train, test])
    assert len(joined) == 15_000 and hasattr(joined, "tensors")
    assert torch.equal(joined.tensors()[1][5000:], test.tensors()[1])
    shift = make("random-shift", pad=2)
    moved = make("transformed", dataset=test, transform=[shift], seed=4)
    x, _ = test.batch(torch.arange(10_000))
    assert moved.tensors()[0].shape == x.shape and not torch.equal(moved.tensors()[0], x)
    assert torch.equal(moved.tensors()[0], make("transformed", dataset=test, transform=[shift], seed=4).tensors()[0])


CARVED = SMALL_MLP.replace("""\
  dataset: {component: mnist}""", """\
  dataset:
    component: random-split
    dataset: {component: subset, dataset: {component: mnist, split: train}, count: 2000}
    parts: {train: 0.8, val: 0.2}
  train_split: train
  eval_split: val""")


def test_a_recipe_carves_a_validation_split_from_the_training_data(tmp_path):
    path = write_recipe(tmp_path, CARVED, epochs=1, batch=100)
    result = run_zoo("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "1,600 training samples (train), 400 evaluation samples (val)" in result.stdout
    # a split that is no part, and a wrapped dataset that cannot take the split handed to it
    bad = run_zoo("check", str(path), "--set", "data.eval_split=test")
    assert bad.returncode == 2 and re.search(r"data.dataset: split 'test' is not one of the parts \(train, val\)",
                                             bad.stderr), bad.stderr
    plain = write_recipe(tmp_path, SMALL_MLP.replace("{component: mnist}", "{component: subset, dataset: mnist, count: 50}"),
                         epochs=1, batch=10)
    assert "50 training samples (train), 50 evaluation samples (test)" in run_zoo("check", str(plain)).stdout
    wrong = run_zoo("check", str(plain), "--set", "data.eval_split=val")
    assert wrong.returncode == 2 and re.search(r"data.dataset.dataset: dataset 'mnist': parameter 'split' expects "
                                               r"Literal\['train', 'test'\], got str 'val'", wrong.stderr), wrong.stderr
