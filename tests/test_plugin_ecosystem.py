"""What plugins add besides components: pretrained catalogs with weights, recipes and commands (the
example plugin, installed as a real package); the clash policy that keeps saved weights loading;
weights that need a plugin that is not installed."""

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, pip_installed, run_zoo

EXAMPLE = ROOT / "docs" / "examples" / "zoo-plugin-example"
CLASH = ROOT / "tests" / "plugin_pkgs" / "zoo-clash"
WEIGHTS = "zoo_example/pretrained/two-spirals-glu.safetensors"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    site = tmp_path_factory.mktemp("example-site")
    return {**pip_installed(site, EXAMPLE), "SITE": str(site)}


@pytest.fixture(scope="module")
def with_clash(tmp_path_factory):
    site = tmp_path_factory.mktemp("clash-site")
    return {**pip_installed(site, EXAMPLE, CLASH), "SITE": str(site)}


def outputs(env: dict, source: str) -> torch.Tensor:
    """The two-spirals-glu model's outputs on fixed points, in a process with ``env``'s plugins."""
    code = (f"import torch, zoo; m = zoo.load({source!r}); x = torch.linspace(-1, 1, 40).reshape(20, 2); "
            "print(m(x).detach().flatten().tolist())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return torch.tensor(eval(result.stdout))


def test_the_example_plugin_provides_every_kind_of_extension(example):
    plugins = run_zoo("plugins", env=example).stdout
    assert re.search(r"^example +loaded +zoo-plugin-example 0\.2\.0 +zoo_example +1 layer, 1 model, 1 dataset, "
                     r"1 optimizer, 1 scheduler, 1 loss, 1 metric, 1 callback, 1 transform, 1 command$", plugins, re.M), plugins
    pretrained = run_zoo("list", "--pretrained", env=example).stdout
    assert re.search(r"^two-spirals-glu +example +accuracy 0\.9\d+ \(two-spirals test\) +8,834 +shipped", pretrained, re.M)
    assert re.search(r"^mnist-mlp +zoo ", pretrained, re.M)  # zoo's own catalog is still there
    recipes = run_zoo("list", "--recipes", env=example).stdout
    assert re.search(r"^two-spirals-glu +example +How the shipped", recipes, re.M)
    drawing = run_zoo("spirals", "--n", "300", env=example)
    assert drawing.returncode == 0 and drawing.stdout.count("o") > 50 and drawing.stdout.count("x") > 50
    assert "spirals" in run_zoo("--help", env=example).stdout


def test_a_plugins_pretrained_model_loads_by_name_verifies_and_its_recipe_builds(example, tmp_path):
    verified = run_zoo("verify", "two-spirals-glu", env=example)
    assert verified.returncode == 0, verified.stderr
    assert re.search(r"accuracy on two-spirals test: measured 0\.9\d+, catalog 0\.9\d+  ok", verified.stdout)
    loaded = outputs(example, "two-spirals-glu")
    assert torch.equal(loaded, outputs(example, str(EXAMPLE / WEIGHTS)))  # the shipped file, by name
    built = run_zoo("build", "two-spirals-glu", "--no-progress", "--set", "train.epochs=3", env=example, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "epoch 3/30" in built.stdout or "epoch 3/3" in built.stdout
    # the recipe that uses every kind the plugin provides; its callback ends the run at 0.95
    all_kinds = run_zoo("build", "two-spirals-glu-net", "--no-progress", env=example, cwd=tmp_path)
    assert all_kinds.returncode == 0, all_kinds.stderr
    assert re.search(r"stopped after epoch \d+ of 40: test_accuracy reached 0.95", all_kinds.stdout), all_kinds.stdout
    every = run_zoo("verify", "--all", env=example)
    assert every.returncode == 0, every.stderr
    assert re.search(r"verified \d of 4 catalog models; 0 mismatched, \d skipped", every.stdout), every.stdout


def test_weights_saved_before_a_clashing_plugin_was_installed_load_bit_identically(example, with_clash, tmp_path):
    before = outputs(example, "two-spirals-glu")
    after = outputs(with_clash, "two-spirals-glu")
    assert torch.equal(before, after)
    plugins = run_zoo("plugins", env=with_clash)
    assert re.search(r"layer 'gated-linear' is registered by '(example|clash)' .* and '(example|clash)' .*: pick "
                     r"one with", plugins.stderr), plugins.stderr
    assert "'relu' means zoo's own 'layers:relu'; name the other 'clash:relu'" in plugins.stderr
    assert "command 'list' is refused: zoo's own command has that name" in plugins.stderr
    assert "command 'clash-broken' is broken: its arguments raised ZeroDivisionError" in plugins.stderr
    broken = run_zoo("clash-broken", env=with_clash)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "zoo: error: command 'clash-broken' of plugin 'clash' (zoo-clash 1.0.0, module zoo_clash) is broken" in broken.stderr
    listing = run_zoo("list", "--kind", "layer", env=with_clash).stdout  # zoo's list, not the plugin's
    assert [line.split()[2] for line in listing.splitlines() if line.startswith("gated-linear ")] == ["clash", "example"]
    strict = run_zoo("--strict-plugins", "list", env=with_clash)
    assert strict.returncode == 2 and "name clashes are fatal" in strict.stderr and "Traceback" not in strict.stderr
    # a new recipe must say which gated-linear it means; relu still means zoo's own
    recipe = EXAMPLE / "zoo_example" / "recipes" / "two-spirals-glu.yaml"
    ambiguous = run_zoo("check", str(recipe), env=with_clash)
    assert ambiguous.returncode == 2 and re.search(r"model.layers\[0\].component: .*pick one with "
                                                   r"'(example|clash):gated-linear' or '(example|clash):gated-linear'",
                                                   ambiguous.stderr), ambiguous.stderr


def test_weights_that_need_a_missing_plugin_say_which_and_how_to_install_it(tmp_path):
    code = f"import zoo; zoo.load({str(EXAMPLE / WEIGHTS)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert ("model.layers[0].component: 'gated-linear' comes from plugin 'example' (zoo-plugin-example 0.2.0 when "
            "these weights were saved, the file says), which is not installed: install the distribution that "
            "provides it, from a source you trust") in result.stderr
    cli = run_zoo("predict", str(EXAMPLE / WEIGHTS), "1,2")
    assert cli.returncode == 2 and "zoo-plugin-example 0.2.0 when these weights were saved" in cli.stderr
    assert "pip install" not in cli.stderr  # a file names any package: zoo never turns that into a command


def test_listing_stays_free_of_torch_with_plugin_catalogs_recipes_and_commands(example):
    code = ("import sys, zoo.cli\n"
            "for argv in (['list'], ['list', '--pretrained'], ['list', '--recipes'], ['plugins'], ['info', 'two-spirals-glu']):\n"
            "    zoo.cli.main(argv)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **example})
    assert result.returncode == 0, result.stderr


def test_the_example_plugins_own_tests_pass_with_zoo_testing(example, tmp_path):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                             str(EXAMPLE / "pyproject.toml"), str(EXAMPLE / "tests")],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **example})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_reproduce_trains_a_file_again_with_the_components_it_was_made_of(with_clash, tmp_path):
    """Since the example's file was saved a second plugin registers 'gated-linear'; a new recipe must say
    which it means, but a reproduction builds what the file's components were (its pins)."""
    again = run_zoo("reproduce", "two-spirals-glu", env=with_clash, cwd=tmp_path)
    assert "Traceback" not in again.stderr and "zoo: error" not in again.stderr, again.stderr
    assert again.returncode in (0, 1) and re.search(r"^reproduced in \d+ s with torch .* on ", again.stdout, re.M), \
        again.stderr
