"""What a newcomer trips on, one test per item: which weights a name means, what the store keeps, a
fine-tune with a new head, threads, inputs unlike the training data, and the papercuts."""

import re

import torch
from conftest import ROOT, SMALL_MLP, run_zoo, write_recipe

import zoo
from zoo.registry.signature import Signature
from zoo.weights import store


def test_identical_rebuilds_are_two_builds_with_their_own_run_folders_and_one_file(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000)
    for _ in range(2):
        assert run_zoo("build", str(recipe), "--no-progress", cwd=tmp_path).returncode == 0
    one, two = store.builds("small-mlp")
    assert (one.version, two.version) == (1, 2) and one.sha256 == two.sha256  # the same bytes ...
    assert one.run.endswith("runs/small-mlp") and two.run.endswith("runs/small-mlp-2")  # ... two builds
    assert len(list((tmp_path / "zoo-home" / "models" / "small-mlp").glob("*.safetensors"))) == 1
    listing = run_zoo("builds", "small-mlp").stdout
    assert re.search(r"@1 .*runs/small-mlp$", listing, re.M) and re.search(r"@2 latest .*\(same recipe\).*runs/small-mlp-2$",
                                                                          listing, re.M)
    assert zoo.load(f"small-mlp@{one.sha256[:6]}").zoo_source.label == "small-mlp@2"  # one file: its latest build


NEW_HEAD = SMALL_MLP.replace("  hidden: [64]", "").replace("  log_every: 10", "  log_every: 10\n  init: mnist-mlp\n"
                                                                              "  new_head: true")


def test_new_head_is_one_key_and_leaves_the_old_head_out_whatever_its_shape(tmp_path):
    out = tmp_path / "run"
    result = run_zoo("build", str(write_recipe(tmp_path, NEW_HEAD, epochs=1, batch=500)), "--out", str(out),
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "init: loaded 4 of the model's 6 tensors from mnist-mlp" in result.stdout  # not 6 of 6: the head is new
    assert re.search(r"linear_relu_stack.4.weight +new head: keeps its initialisation", result.stdout)
    published = zoo.load("mnist-mlp").state_dict()["linear_relu_stack.4.weight"]
    trained = zoo.load(out / "weights.safetensors")
    assert not torch.allclose(trained.state_dict()["linear_relu_stack.4.weight"], published, atol=0.05)
    assert trained.zoo_meta.init.new_head == ("linear_relu_stack.4.weight", "linear_relu_stack.4.bias")
    assert "A new head, trained from its own initialisation" in run_zoo("card", str(out / "weights.safetensors")).stdout


def test_threads_are_a_recipe_key_said_in_the_summary_and_given_back(tmp_path):
    before = torch.get_num_threads()
    result = run_zoo("build", str(write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000)), "--out",
                     str(tmp_path / "run"), "--no-progress", "--set", "train.threads=1", "--set", "train.precision=bf16")
    assert result.returncode == 0, result.stderr
    assert re.search(r"device cpu, precision bf16, 1 CPU thread$", result.stdout, re.M)
    assert torch.get_num_threads() == before
    default = run_zoo("check", str(tmp_path / "recipe.yaml"))
    assert re.search(rf"device cpu, {before} CPU threads?$", default.stdout, re.M)


def test_a_log_that_is_not_a_terminal_gets_no_progress_bar(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=100)
    result = run_zoo("build", str(recipe), "--out", str(tmp_path / "run"))  # progress on; stderr is no terminal
    assert result.returncode == 0 and "batch/s" not in result.stderr and "it/s" not in result.stderr
    assert "epoch 1/1" in result.stdout


def test_component_summaries_are_whole_sentences_without_markup():
    for component in zoo.components():
        assert component.summary.endswith((".", "?", "!")) and "``" not in component.summary, component.name
    assert Signature("First line\ngoes on. Then more.\n\nDetails.", ()).summary == "First line goes on."


def test_check_reports_independent_mistakes_together(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP.replace("hidden: [64]", "hidden: abc"), epochs=1, batch=0)
    result = run_zoo("check", str(recipe))
    errors = result.stderr.splitlines()
    assert result.returncode == 2 and len(errors) == 2, result.stderr
    assert "model.hidden: model 'mnist-mlp': parameter 'hidden' expects Sequence[int], got str 'abc'" in errors[0]
    assert "data.batch_size: expects a positive integer, got 0" in errors[1]


def test_global_options_are_accepted_after_the_command(tmp_path):
    recipe = write_recipe(tmp_path, SMALL_MLP, epochs=1, batch=1000)
    result = run_zoo("build", str(recipe), "--out", str(tmp_path / "run"), "-p", "no:plot", "-pno:store")
    assert result.returncode == 0 and not (tmp_path / "run" / "loss.png").exists() and "recorded" not in result.stdout


def test_a_misspelt_name_gets_its_kebab_case_spelling():
    result = run_zoo("predict", "mnist_mlp", "1,2")
    assert result.returncode == 2 and "Did you mean 'mnist-mlp'?" in result.stderr


def test_sweep_labels_write_null_as_yaml_does(tmp_path):
    text = SMALL_MLP + "sweep:\n  train.init: [null]\n"
    result = run_zoo("build", str(write_recipe(tmp_path, text, epochs=1, batch=1000)), "--out", str(tmp_path / "s"),
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "--- small-mlp: init=null" in result.stdout and (tmp_path / "s" / "init-null").is_dir()


def test_the_readme_use_section_works_as_written_in_a_fresh_shell(tmp_path):
    readme = (ROOT / "README.md").read_text()
    use = readme.split("## Use", 1)[1]
    assert ". .venv/bin/activate" in use and "cp zoo/recipes/mnist-mlp.yaml my-recipe.yaml" in use
    assert (ROOT / "zoo" / "recipes" / "mnist-mlp.yaml").is_file()
    copied = tmp_path / "my-recipe.yaml"
    copied.write_text((ROOT / "zoo" / "recipes" / "mnist-mlp.yaml").read_text())
    result = run_zoo("check", "my-recipe.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
