"""The command line: listing without torch, info, plugins, third-party packages, and clean errors."""

import os
import re
import subprocess
import sys

import pytest
from conftest import BIN, ROOT, pip_installed, run_zoo
from test_registry import BUILTIN

PKGS = ROOT / "tests" / "plugin_pkgs"


def test_list_shows_every_builtin_with_kind_and_plugin():
    result = run_zoo("list")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("\n\n")[0]  # the table; another library's models are counted below it
    rows = {tuple(line.split()[:2]): line.split()[2] for line in listed.splitlines()[1:] if line.strip()}
    assert {(name, kind) for kind, names in BUILTIN.items() for name in names} == set(rows)
    assert rows[("feed-forward", "layer")] == "layers" and rows[("mnist", "dataset")] == "datasets"
    assert rows[("mse", "loss")] == rows[("mse", "metric")] == "training"  # one name, two kinds


def test_list_filters_by_pattern_and_kind():
    assert run_zoo("list", "attention").stdout.splitlines()[1].startswith("multi-head-attention")
    result = run_zoo("list", "*-net", "--kind", "model")
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["simple-net"]
    assert "no components match 'zzz'" in run_zoo("list", "zzz").stdout


def test_info_shows_parameters_with_types_and_defaults():
    result = run_zoo("info", "feed-forward")
    assert result.returncode == 0
    assert "dim: int = 312" in result.stdout and "scale: int = 4" in result.stdout
    assert "plugin: layers (zoo-models 0.1.0)" in result.stdout
    assert "Linear(dim, dim*scale)" in result.stdout


def test_listing_imports_no_torch():
    code = (
        "import sys, zoo, zoo.cli\n"
        "zoo.cli.main(['list']); zoo.cli.main(['info', 'mnist-mlp']); zoo.cli.main(['plugins'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
        "optional = {'fastapi', 'uvicorn', 'batched', 'prometheus_client', 'starlette', 'optuna', 'huggingface_hub'}"
        " & set(sys.modules)\n"
        "assert not optional, f'an optional stack was imported: {optional}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_plugins_lists_status_and_versions():
    result = run_zoo("plugins")
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()}
    assert lines["layers"][1:4] == ["loaded", "zoo-models", "0.1.0"]
    assert lines["layers"][-2:] == ["12", "layers"]
    assert re.search(r"^training .* 3 optimizers, 2 schedulers, 2 losses, 7 metrics, 2 strategies$", result.stdout, re.M)
    assert re.search(r"^datasets .* 11 datasets, 6 transforms, 1 command$", result.stdout, re.M)


def test_disabled_plugins_show_as_disabled():
    result = run_zoo("plugins", env={"ZOO_PLUGINS_DISABLE": "models"})
    assert re.search(r"^models +disabled ", result.stdout, re.M)
    assert "mnist-mlp" not in run_zoo("list", env={"ZOO_PLUGINS_DISABLE": "models"}).stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "feed-forwad"], "zoo: error: unknown component 'feed-forwad'. Did you mean 'feed-forward'?"),
        (["info", "adam", "--kind", "layer"], "zoo: error: 'adam' is an optimizer, not a layer"),
        (["list", "--kind", "widget"], "invalid choice: 'widget'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_2(args, message):
    result = run_zoo(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_reads_well():
    result = run_zoo("--help")
    assert result.returncode == 0
    for command in ("list", "info", "plugins"):
        assert command in result.stdout
    assert "wildcards" in run_zoo("list", "--help").stdout


def test_python_dash_m_zoo_works():
    result = subprocess.run([sys.executable, "-m", "zoo", "info", "simple-net"], capture_output=True, text=True)
    assert result.returncode == 0 and "in_features: int = 3" in result.stdout


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    """zoo-hello and zoo-broken pip-installed into a folder of their own, put on PYTHONPATH."""
    return pip_installed(tmp_path_factory.mktemp("site"), PKGS / "zoo-hello", PKGS / "zoo-broken")


def test_a_pip_installed_plugin_is_listed_and_builds(third_party):
    result = run_zoo("list", "hello", env=third_party)
    assert result.returncode == 0
    assert result.stdout.splitlines()[1].split()[:3] == ["hello-scale", "layer", "hello"]
    plugins = run_zoo("plugins", env=third_party).stdout
    assert re.search(r"^hello +loaded +zoo-hello 1.2.3 ", plugins, re.M)
    code = "import torch, zoo; m = zoo.create('hello-scale', init=3.0); print(m(torch.ones(2)).tolist())"
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **third_party})
    assert built.stdout.strip() == "[3.0, 3.0]", built.stderr


def test_a_plugin_that_fails_at_import_leaves_the_rest_working(third_party):
    result = run_zoo("list", env=third_party)
    assert result.returncode == 0
    assert "zoo: warning: zoo plugin 'broken' (zoo-broken 0.0.1, module zoo_broken) is broken" in result.stderr
    assert "zoo_broken needs a library that is not installed" in result.stderr
    assert "feed-forward" in result.stdout and "hello-scale" in result.stdout
    plugins = run_zoo("plugins", env=third_party).stdout
    assert re.search(r"^broken +broken ", plugins, re.M)


def test_strict_flag_makes_a_broken_plugin_fatal(third_party):
    result = run_zoo("--strict-plugins", "list", env=third_party)
    assert result.returncode == 2
    assert "zoo: error: zoo plugin 'broken'" in result.stderr and "Traceback" not in result.stderr


def test_the_first_commands_people_type(tmp_path):
    version = run_zoo("--version")
    assert version.returncode == 0
    assert re.match(r"zoo \d+\.\d+\.\d+ \(zoo-models\), torch \S+, python 3\.\d+\.\d+\nplugins: .*layers.* \(zoo-models "
                    r"\d+\.\d+\.\d+\)", version.stdout), version.stdout
    helped = run_zoo("help", "build")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: zoo build") and "--resume" in helped.stdout
    assert run_zoo("help").stdout.startswith("usage: zoo")
    typo = run_zoo("buidl", "mnist-mlp")
    assert typo.returncode == 2 and typo.stderr == ("zoo: error: unknown command 'buidl'. Did you mean 'build'? "
                                                    "(see 'zoo --help')\n")
    assert "no command 'serach'. Did you mean 'search'?" in run_zoo("help", "serach").stderr
    # shell completion (argcomplete): what bash's `eval "$(register-python-argcomplete zoo)"` asks for
    answer = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": "zoo bui", "COMP_POINT": "7",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
    subprocess.run([str(BIN / "zoo")], env=env, timeout=60, check=True)
    assert sorted(answer.read_text().split("\v")) == ["build", "builds"]
