"""Reliability: located one-line errors for bad input, plugins that fail in new ways, file modes,
closed pipes, and a test session that never touches the user's zoo home."""

import os
import shutil
import re
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, REAL_HOME, SMALL_MLP, build, fixture_plugin, make_registry, run_zoo, write_recipe

import zoo

from zoo.recipe.parse import RecipeError
from zoo.registry import PluginWarning
from zoo.recipe.schema import read


def recipe_text(epochs: int = 1, batch: int = 1000) -> str:
    return SMALL_MLP.replace("EPOCHS", str(epochs)).replace("BATCH", str(batch))


def line_col(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def test_the_session_never_uses_the_users_zoo_home():
    assert Path(os.environ["ZOO_HOME"]).resolve() != REAL_HOME.resolve()
    assert not Path(os.environ["ZOO_HOME"]).resolve().is_relative_to(REAL_HOME.resolve())


@pytest.mark.parametrize("bad, needle, message", [
    (b"\x01", "seed", "YAML cannot contain the control character 0x01"),
    (b"\x00", "seed", "YAML cannot contain the control character 0x00"),
    (b"\xff\xfe", "seed", "not UTF-8 text: byte 0xff cannot be decoded"),
])
def test_bytes_yaml_cannot_read_are_located(tmp_path, bad, needle, message):
    text = recipe_text()
    line, _ = line_col(text, needle)
    path = tmp_path / "r.yaml"
    path.write_bytes(text.replace("seed: 0", "seed: 0 # ").encode().replace(b"# ", b"# " + bad))
    with pytest.raises(RecipeError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}:{line}:") and message in str(info.value)


@pytest.mark.parametrize("old, new, needle", [
    ("name: small-mlp", "name: 'small-mlp", "'small-mlp"),
    ("hidden: [64]", "hidden: [64", "[64"),
    ("loss: cross-entropy", 'loss: "cross-entropy', '"cross-entropy'),
])
def test_an_unclosed_quote_or_bracket_is_reported_where_it_opens(tmp_path, old, new, needle):
    text = recipe_text().replace(old, new)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    line, column = line_col(text, needle)
    with pytest.raises(RecipeError, match="YAML syntax error: .* that starts here: is it closed") as info:
        read(path)
    assert str(info.value).startswith(f"{path}:{line}:{column}:")


def test_an_extends_cycle_is_located_at_the_extends_key(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("name: b\nextends: a.yaml\n")
    (tmp_path / "self.yaml").write_text("name: s\nextends: self.yaml\n")
    with pytest.raises(RecipeError) as info:
        read(tmp_path / "a.yaml")
    assert str(info.value) == f"{tmp_path / 'b.yaml'}:2:1: extends: extends forms a cycle: a.yaml -> b.yaml -> a.yaml"
    with pytest.raises(RecipeError, match=r"self.yaml:2:1: extends: extends forms a cycle: self.yaml -> self.yaml"):
        read(tmp_path / "self.yaml")


@pytest.mark.parametrize("device, message", [
    ("cuda:3", "CUDA is not available"),
    ("mps", "MPS (Apple GPUs) is not available"),
])
def test_a_device_this_machine_lacks_is_refused_by_check_at_its_line(tmp_path, device, message):
    text = recipe_text().replace("  seed: 0\n", f"  seed: 0\n  device: {device}\n")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    line, _ = line_col(text, "device:")
    for command in ("check", "build"):
        result = run_zoo(command, str(path), "--out", str(tmp_path / "run")) if command == "build" else \
            run_zoo(command, str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"{path}:{line}:3: train.device: device '{device}' requested but" in result.stderr
        assert message in result.stderr


def test_an_impossible_size_gives_one_located_line_without_a_backtrace(tmp_path):
    text = recipe_text().replace("hidden: [64]", "hidden: [100000000000000000000]")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{path}:" in result.stderr and "model: the model would make a tensor of " in result.stderr
    assert "more than the 17.2 GB bound (ZOO_MAX_BUILD_BYTES raises it)" in result.stderr


def test_a_sweep_of_empty_or_non_list_values_is_refused_by_check(tmp_path):
    for sweep in ("{data.batch_size: []}", "{data.batch_size: 8}", "{}"):
        path = tmp_path / "r.yaml"
        path.write_text(recipe_text() + f"sweep: {sweep}\n")
        result = run_zoo("check", str(path))
        assert result.returncode == 2 and "sweep: expects a mapping of key path -> non-empty list" in result.stderr


def test_a_plugin_calling_sys_exit_at_import_is_broken_and_the_rest_keep_working(tmp_path, monkeypatch):
    (tmp_path / "fx_exits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginWarning, match=r"zoo plugin 'exits' .* is broken and was skipped: SystemExit: 3"):
        registry = make_registry(fixture_plugin("exits", "fx_exits"))
        assert registry.get("linear").kind == "layer"
    assert {p.name: p.status for p in registry.plugins}["exits"] == "broken"


def test_a_factory_whose_module_is_missing_is_listed_broken_and_refused_at_the_recipe_line(tmp_path, monkeypatch):
    (tmp_path / "fx_missing_target.py").write_text(
        "from zoo.api import hookimpl\n\n\n@hookimpl\ndef register_layers(register):\n"
        "    register('ghost', 'no_such_module_anywhere:Ghost')\n")
    site = tmp_path / "site" / "fx_missing-0.1.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: fx-missing\nVersion: 0.1\n")
    (site / "entry_points.txt").write_text("[zoo.plugins]\nmissing = fx_missing_target\n")
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{tmp_path}"}
    listing = run_zoo("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "ghost" in listing.stdout and "(broken) layer 'ghost' from plugin 'missing'" in listing.stdout
    assert "mnist-mlp" in listing.stdout
    text = recipe_text().replace("model:\n  component: mnist-mlp\n  hidden: [64]", "model: ghost")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    result = run_zoo("check", str(path), env=env)
    line, _ = line_col(text, "ghost")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:{line}:1: model: layer 'ghost' from plugin 'missing'" in result.stderr
    assert "cannot be imported from 'no_such_module_anywhere:Ghost'" in result.stderr


def test_a_weights_file_naming_an_unknown_component_names_the_file(tmp_path):
    from conftest import raw_meta, rewrite_meta

    [out] = build(write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000), out=tmp_path / "run",
                  disable=["progress", "plot", "store"], log=lambda line: None)
    meta = raw_meta(out / "weights.safetensors")
    meta["model"] = {"component": "mnist-mpl", "hidden": [64]}
    odd = tmp_path / "odd.safetensors"
    rewrite_meta(out / "weights.safetensors", odd, meta)
    with pytest.raises(zoo.ZooError) as info:
        zoo.load(odd)
    assert str(info.value).startswith(f"{odd}: model.component: unknown model or layer 'mnist-mpl'")
    assert "Did you mean 'mnist-mlp'" in str(info.value)


def test_deeply_nested_metadata_in_a_weights_file_is_refused_cleanly(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"zoo": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(zoo.ZooError, match=f"{path}: its metadata is not JSON \\(RecursionError\\); the file is corrupt"):
        zoo.load(path)


def test_run_folder_files_follow_the_umask_like_the_store(tmp_path):
    [out] = build(write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000), out=tmp_path / "run",
                  disable=["progress"], log=lambda line: None)
    mask = os.umask(0)
    os.umask(mask)
    expected = 0o666 & ~mask
    for path in [out / "weights.safetensors", out / "metrics.jsonl", out / "recipe.yaml",
                 *(tmp_path / "zoo-home" / "models" / "small-mlp").glob("*.safetensors")]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    for args in (["list"], ["info", "mnist-mlp"], ["docs"]):
        shell = subprocess.run(f"'{BIN / 'zoo'}' {' '.join(args)} | head -1", shell=True, capture_output=True,
                               text=True, timeout=120)
        assert shell.stdout.strip() and "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr, \
            shell.stderr


def test_the_generated_reference_spells_every_kind_heading():
    from zoo.registry.reference import render

    text = render(make_registry())
    assert "## Losses" in text and "## Losss" not in text and "## Schedulers" in text


SEQUENTIAL = """\
name: bare-names
model:
  component: sequential
  layers:
    - flatten
    - {component: linear, in_features: 784, out_features: 10}
    - LAST
data:
  dataset: {component: mnist}
  batch_size: 1000
train:
  epochs: 1
  optimizer: {component: adam}
  loss: cross-entropy
"""


def test_a_bare_name_is_a_node_wherever_a_module_is_expected(tmp_path):
    good = write_recipe(tmp_path, SEQUENTIAL, last="relu")
    result = run_zoo("check", str(good))
    assert result.returncode == 0, result.stderr
    from zoo.assembly.assembler import Assembler

    built = Assembler(zoo.default_registry()).model(read(good).model)
    assert [type(m).__name__ for m in built] == ["Flatten", "Linear", "ReLU"]
    bad = write_recipe(tmp_path, SEQUENTIAL, last="relux")
    result = run_zoo("check", str(bad))
    line, column = line_col(bad.read_text(), "relux")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"recipe.yaml:{line}:{column}: model.layers[2]: unknown model or layer 'relux'" in result.stderr
    assert "Did you mean 'relu'?" in result.stderr


LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n" for i in range(9))


@pytest.mark.parametrize("prefix, needle, message", [
    (LAUGHS, "l5: &l5", r"this value expands to [\d,]+ values through YAML aliases \(at most 100,000\)"),
    (LAUGHS.replace("[", "{k: [").replace("]\n", "]}\n"), "l5: &l5",
     r"this value expands to [\d,]+ values through YAML aliases"),
    ("loop: &a [1, *a]\n", "&a", "a YAML alias here refers to the value that contains it"),
    ("deep: " + "[" * 150 + "]" * 150 + "\n", "[" * 101 + "]", "the recipe nests more than 100 levels deep here"),
    ("deep: " + "[" * 5000 + "]" * 5000 + "\n", "deep", "the YAML nests too deeply here for Python to read"),
    ("".join("  " * i + f"k{i}:\n" for i in range(3000)) + "  " * 3000 + "v: 1\n", "k0",
     "the YAML nests too deeply here for Python to read"),
])
def test_alias_bombs_and_deep_nesting_are_fast_located_errors(tmp_path, prefix, needle, message):
    path = tmp_path / "r.yaml"
    path.write_text(prefix + recipe_text())
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    line, column = map(int, re.search(r"r\.yaml:(\d+):(\d+):", result.stderr).groups())
    if needle.startswith(("l5", "&a", "[")):
        assert line == line_col(prefix, needle)[0]
    else:  # where the reader was when the nesting became too deep, not the top of the file
        assert line > 100 or column > 100


@pytest.mark.parametrize("merge", ["<<: *defaults", "<<: [*defaults, *other]"])
def test_a_merge_key_can_be_overridden_but_own_keys_cannot_repeat(tmp_path, merge):
    text = recipe_text().replace("train:\n  epochs: 1\n  seed: 0\n",
                                 f"train:\n  {merge}\n  epochs: 2\n")
    anchors = "data_defaults: &defaults {epochs: 7, seed: 3}\nmore: &other {seed: 4, log_every: 5}\n"
    path = tmp_path / "r.yaml"
    path.write_text(anchors + text)
    from zoo.recipe.parse import load

    train = load(path).data["train"]
    assert train["epochs"] == 2 and train["seed"] == 3  # own key overrides; the first merge wins
    path.write_text(anchors + text.replace("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n"))
    with pytest.raises(RecipeError, match=r"r.yaml:\d+:3: train.epochs: duplicate key 'epochs'"):
        load(path)


def test_check_reports_every_independent_error_in_file_order(tmp_path):
    text = (recipe_text().replace("name: small-mlp", "name: Small_MLP").replace("  batch_size: 1000", "  batch_size: -3")
            .replace("  epochs: 1", "  epochs: 0\n  epoch: 2").replace("metrics: [accuracy]", "metrics: 7"))
    path = write_recipe(tmp_path, text)
    result = run_zoo("check", str(path))
    errors = [line for line in result.stderr.splitlines() if line.startswith("zoo: error: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = [("Small_MLP", "name: expects a kebab-case name"), ("batch_size: -3", "data.batch_size: expects a positive"),
                ("epochs: 0", "train.epochs: expects a positive integer"),
                ("epoch: 2", "train.epoch: unknown key 'epoch'. Did you mean 'epochs'?"),
                ("metrics:", "metrics: expects a list of metric components, got 7")]
    assert len(errors) == len(expected)
    for error, (needle, message) in zip(errors, expected):
        line, _ = line_col(text, needle)
        assert f"recipe.yaml:{line}:" in error and message in error, error
    parts = recipe_text().replace("component: mnist-mlp", "component: mnist-mlpp").replace(
        "{component: mnist}", "{component: mnistt}").replace("loss: cross-entropy", "loss: {component: cross-entropy, smoothing: 1}")
    result = run_zoo("check", str(write_recipe(tmp_path, parts)))
    errors = [line for line in result.stderr.splitlines() if line.startswith("zoo: error: ")]
    assert [e.split(": ")[3] for e in errors] == ["model.component", "data.dataset.component", "train.loss.smoothing"]


@pytest.mark.parametrize("classes", [5, 9])
def test_a_head_smaller_than_the_classes_is_refused_by_check(tmp_path, classes):
    path = write_recipe(tmp_path, recipe_text().replace("  hidden: [64]", f"  hidden: [64]\n  num_classes: {classes}"))
    result = run_zoo("check", str(path))
    line, _ = line_col(path.read_text(), "model:")
    assert result.returncode == 2, result.stdout
    assert (f"recipe.yaml:{line}:1: model: the model has {classes} outputs per prediction but mnist has 10 classes "
            "(labels 0..9): give its last layer 10 outputs") in result.stderr


REFUSED = {  # recipes zoo build refuses before training: zoo check must refuse each the same way
    "unknown key": ("  log_every: 10", "  log_every: 10\n  log_evry: 3"),
    "bad type": ("  batch_size: 1000", "  batch_size: '1000'"),
    "unknown component": ("component: adam", "component: adamm"),
    "bad parameter": ("component: adam,", "component: adam, betas: 3,"),
    "head too small": ("  hidden: [64]", "  hidden: [64]\n  num_classes: 4"),
    "device missing": ("  seed: 0", "  seed: 0\n  device: cuda:3"),
    "impossible size": ("  hidden: [64]", "  hidden: [100000000000000000000]"),
    "bare name typo": ("component: mnist-mlp\n  hidden: [64]",
                       "component: sequential\n  layers: [flatten, {component: linear, in_features: 784, "
                       "out_features: 10}, relux]"),
    "empty sweep": ("metrics: [accuracy]", "metrics: [accuracy]\nsweep: {data.batch_size: []}"),
    "sweep of an unknown key": ("metrics: [accuracy]", "metrics: [accuracy]\nsweep: {train.epoch: [1, 2]}"),
    "sweep to a bad value": ("metrics: [accuracy]", "metrics: [accuracy]\nsweep: {train.epochs: [1, 0]}"),
    "sweep to a bad model": ("metrics: [accuracy]", "metrics: [accuracy]\nsweep: {model.num_classes: [10, 3]}"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_refuses_everything_build_refuses_before_training(tmp_path, capsys, case):
    from zoo.cli import main

    old, new = REFUSED[case]
    assert old in recipe_text()
    path = write_recipe(tmp_path, recipe_text().replace(old, new))
    outcomes = []
    for command in (["check", str(path)], ["build", str(path), "--out", str(tmp_path / "run"), "--no-progress"]):
        code = main(command)
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoo: error: ")]
        outcomes.append((code, errors))
    (check_code, check_errors), (build_code, build_errors) = outcomes
    assert build_code == 2 and build_errors and not (tmp_path / "run").exists()
    assert check_code == 2 and check_errors[0] == build_errors[0]
    assert re.search(r"recipe\.yaml:\d+:\d+: ", check_errors[0]), check_errors[0]


def _mutations(text: str, rng) -> list[tuple[str, str]]:
    """Randomly damaged copies of a recipe: a line deleted or repeated, a value's type swapped,
    random bytes inserted, the file cut short, a line's indentation changed."""
    lines = text.splitlines(keepends=True)
    valued = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]

    def with_line(i: int, line: str) -> str:
        return "".join(lines[:i] + [line] + lines[i + 1:])

    i, j, k = rng.randrange(len(lines)), rng.choice(valued), rng.randrange(len(lines))
    cut = rng.randrange(len(text))
    key = lines[j].split(": ")[0]
    return [
        ("delete a line", with_line(i, "")),
        ("repeat a line", with_line(i, lines[i] * 2)),
        ("value to a list", with_line(j, f"{key}: [1, x]\n")),
        ("value to text", with_line(j, f"{key}: 'seven'\n")),
        ("value to a mapping", with_line(j, f"{key}: {{a: 1}}\n")),
        ("random bytes", text[:cut] + "".join(chr(rng.choice([0, 7, 9, 10, 34, 39, 58, 91, 123, 125, 0xFFFD]))
                                               for _ in range(rng.randint(1, 4))) + text[cut:]),
        ("cut short", text[:cut]),
        ("indent changed", with_line(k, " " * rng.choice([1, 3, 5]) + lines[k])),
    ]


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (Path(zoo.__file__).parent / "recipes").glob("*.yaml")))
def test_randomly_damaged_recipes_give_exit_0_or_a_located_error_never_a_traceback(tmp_path, capsys, recipe):
    import random

    from zoo.recipe.catalog import recipe_path
    from zoo.cli import main

    source = recipe_path(recipe, zoo.default_registry())
    rng = random.Random(recipe)  # a fixed sequence per recipe: a failure reproduces
    outcomes = []
    for what, text in (m for _ in range(4) for m in _mutations(source.read_text(), rng)):
        path = tmp_path / source.name
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        for base in source.parent.glob("*.yaml"):  # an 'extends' finds its base beside the copy
            if base != source:
                shutil.copy(base, tmp_path / base.name)
        code = main(["check", str(path)])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoo: error: ")]
        assert code in (0, 2), (what, code)
        outcomes.append(code)
        if code == 2:
            assert errors, what
            for error in errors:
                found = re.match(r"zoo: error: (.+?\.yaml):(\d+):(\d+): ", error)
                assert found, (what, error)
                assert 1 <= int(found.group(2)) <= Path(found.group(1)).read_text(errors="replace").count("\n") + 1
    assert outcomes.count(2) >= 8  # most damage is caught; some (a deleted comment) is harmless
