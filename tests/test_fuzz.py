"""Every option (and positional argument) of every zoo command, given empty, huge, NaN, infinite,
negative and out-of-range values: the answer is a result or one line naming the input, exit status
0 or 2, never an internal error or a traceback. Commands run in this process, against a tiny recipe,
the shipped mnist-mlp and a scratch zoo home; one that would keep running (a server) is a failure."""

import argparse
import re
import threading

import pytest
from conftest import SMALL_MLP, run_zoo, write_recipe

import zoo
from zoo.cli import parser

VALUES = ["", "nan", "inf", "-1", "1e309", "x" * 300]
RUNS_AT_MOST = 60  # seconds one command may take before it counts as having started something that stays up


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, and each action's of a command that has actions ("data pack")."""
    top = parser(zoo.default_registry())
    found = {}
    for name, sub in _choices(top).items():
        found[name] = sub
        found.update({f"{name} {action}": child for action, child in _choices(sub).items()})
    return found


def _choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((a.choices for a in p._actions if isinstance(a, argparse._SubParsersAction)), {})


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("fuzz")
    recipe = write_recipe(folder, SMALL_MLP, epochs=1, batch=32)
    search = folder / "search.yaml"
    search.write_text(recipe.read_text().replace("name: small-mlp", "name: small-search")
                      + "search:\n  trials: 1\n  space:\n    train.optimizer.lr: {log: [1.0e-4, 1.0e-2]}\n")
    return {"recipe": str(recipe), "search": str(search), "folder": str(folder)}


def base(command: str, places: dict) -> list[str]:
    """Valid positional arguments for ``command``, so that its options are what is wrong."""
    model, recipe = "mnist-mlp", places["recipe"]
    return {"info": ["mnist-mlp"], "builds": ["mnist-mlp"], "prune": ["mnist-mlp", "--dry-run"], "verify": [model],
            "predict": [model, "[1, 2, 3]"], "export": [model], "card": [model], "push": [model, places["folder"] + "/pushed"],
            "reproduce": [model], "import": ["torchvision:resnet18.IMAGENET1K_V1"], "inspect": [model],
            "check": [recipe], "build": [recipe], "search": [places["search"]], "plot": [places["folder"]],
            "serve": [model, "--host", "192.0.2.1"],  # an address of no machine here: it cannot start serving
            "help": ["build"], "data": ["info"],
            "data pack": ["nosuch", places["folder"] + "/packed"],  # refused after its options are read
            "data info": [places["folder"]], "data verify": [places["folder"]]}.get(command, [])


def cases(places: dict):
    for name, sub in commands().items():
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction, argparse._VersionAction)):
                continue
            for value in VALUES:
                if action.option_strings:
                    yield name, [*base(name, places), action.option_strings[-1], value]
                else:  # a positional: the others valid
                    args = base(name, places)
                    position = [a for a in sub._actions if not a.option_strings and
                                not isinstance(a, argparse._HelpAction)].index(action)
                    if position < len(args):
                        args = [*args[:position], value, *args[position + 1:]]
                        yield name, args


def test_every_option_of_every_command_answers_in_one_line(places, tmp_path, zoo_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_SERVE_API_KEY", "")
    failures = []
    for name, args in cases(places):
        outcome = {}

        def call():
            outcome["result"] = run_zoo(*name.split(), *args)

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(RUNS_AT_MOST)
        if worker.is_alive():
            failures.append(f"zoo {name} {_short(args)}: still running after {RUNS_AT_MOST} s (the value was accepted)")
            break
        result = outcome["result"]
        said = result.stderr.strip()
        errors = [line for line in said.splitlines() if "error:" in line]
        if result.returncode not in (0, 2) or "internal error" in said or "Traceback" in said or (
                result.returncode == 2 and len(errors) != 1):
            failures.append(f"zoo {name} {_short(args)}: exit {result.returncode}: {said[-400:]}")
    assert not failures, "\n".join(failures)


def _short(args: list[str]) -> str:
    return " ".join(repr(a if len(a) < 40 else a[:12] + f"...({len(a)} chars)") for a in args)


def test_empty_or_mistyped_destinations_and_addresses_write_nothing_and_say_why(tmp_path, zoo_home, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for dest, said in (("", "push needs a destination: a folder or hf-hub:ORG/REPO"),
                       ("hf_hub:me/model", "names no destination zoo or its plugins know: hf-hub:ORG/REPO for the "
                                           "Hugging Face Hub Did you mean 'hf-hub:'?"),
                       ("s3:bucket/model", "names no destination zoo or its plugins know")):
        out = run_zoo("push", "mnist-mlp", dest)
        assert out.returncode == 2 and said in out.stderr, out.stderr
    assert list(here.iterdir()) == []  # nothing written here
    out = run_zoo("predict", "hf_hub:timm/resnet18.a1_in1k", "x.png")
    assert out.returncode == 2 and "Did you mean 'hf-hub'?" in out.stderr
    for bad in ("localhost", "[::1:29500", "http://node0:29500", "node0:99999", ":29500"):
        out = run_zoo("build", "mnist-mlp", "--nproc", "2", "--rdzv", bad)
        assert out.returncode == 2 and "expected HOST:PORT" in out.stderr, (bad, out.stderr)
    out = run_zoo("serve", "mnist-mlp", "--poll", "nan")
    assert out.returncode == 2 and "--poll: expected a number above 0 to 86400, got 'nan'" in out.stderr
    out = run_zoo("export", "mnist-mlp", "--out", "")
    assert out.returncode == 2 and "--out: expected a path, got ''" in out.stderr


def test_ctrl_c_during_a_reproduction_is_one_line_and_exit_130(tmp_path, zoo_home):
    import os
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "zoo", "reproduce", "mnist-mlp"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "ZOO_HOME": str(zoo_home)})
    deadline = time.monotonic() + 120
    while not list(zoo_home.glob("reproductions/*/run/train/metrics.jsonl")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    _, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.startswith("zoo:") and "weights" not in line]
    assert process.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("zoo: reproduction interrupted at epoch ") and "nothing was compared" in lines[0]
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("env, said", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, "WORLD_SIZE=2 is set but MASTER_ADDR, MASTER_PORT not set: this is no torchrun "
                                      "process"),
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' in the environment is not a number"),
    ({"LOCAL_RANK": "x"}, "LOCAL_RANK='x' in the environment is not a number"),
    ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
     "RANK=5 not below WORLD_SIZE"),
])
def test_a_stray_torchrun_environment_is_one_line(env, said, places):
    out = run_zoo("build", places["recipe"], env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and said in out.stderr, out.stderr


def test_reproduce_refuses_a_file_whose_recipe_is_not_what_made_it(tmp_path, zoo_home):
    from conftest import raw_meta, rewrite_meta

    shipped = zoo.load("mnist-mlp").zoo_source.path
    meta = raw_meta(shipped)
    for name, change, said in (
            ("sweep", {"recipe": {**meta["recipe"], "sweep": {"train.epochs": [1, 2]}}}, "has a sweep section"),
            ("model", {"recipe": {**meta["recipe"], "model": {"component": "simple-net"}}},
             "its recorded recipe's model ({'component': 'simple-net'}) is not the model its tensors fit")):
        altered = tmp_path / f"{name}.safetensors"
        rewrite_meta(shipped, altered, {**meta, **change})
        out = run_zoo("reproduce", str(altered))
        assert out.returncode == 2 and said in out.stderr and "internal error" not in out.stderr, out.stderr
    assert not (zoo_home / "reproductions").exists()  # refused before anything was trained


def test_reproduce_fetches_nothing_a_file_names_without_allow_downloads_and_bounds_its_length(tmp_path, zoo_home,
                                                                                               server):
    """A stranger's file whose recipe downloads MNIST from a mirror (a server of this test's): refused,
    listing what it would fetch, and the server hears nothing; a file that asks for a million epochs is
    refused unless --force; under refuse_downloads every way zoo fetches is refused, naming it."""
    from conftest import raw_meta, rewrite_meta

    shipped = zoo.load("mnist-mlp").zoo_source.path
    meta = raw_meta(shipped)
    heard = len(server.requests)
    mirror = f"{server.url}/mnist/"
    data = {**meta["recipe"]["data"], "dataset": {"component": "mnist", "download": True, "mirror": mirror}}
    altered = tmp_path / "fetching.safetensors"
    rewrite_meta(shipped, altered, {**meta, "recipe": {**meta["recipe"], "data": data}})
    out = run_zoo("reproduce", str(altered))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"its recipe would fetch data.dataset.download: true (the dataset's own files); data.dataset.mirror: " \
           f"{mirror}. A reproduction fetches nothing a file names unless you allow it: zoo reproduce " \
           "--allow-downloads" in out.stderr
    assert len(server.requests) == heard and not (zoo_home / "reproductions").exists()
    long = tmp_path / "long.safetensors"
    rewrite_meta(shipped, long, {**meta, "recipe": {**meta["recipe"], "train": {**meta["recipe"]["train"],
                                                                                 "epochs": 1_000_000}}})
    out = run_zoo("reproduce", str(long))
    assert out.returncode == 2 and "its recipe trains 1,000,000 epochs of 5,000 samples" in out.stderr, out.stderr
    assert "a reproduction trains at most 100,000 batches of at most 10,000,000 samples an epoch unless run with " \
           "--force" in out.stderr
    from zoo.files import download, refuse_downloads
    from zoo.weights.hub import download as hub_download, parse
    from zoo_datasets.shards import open_binary

    with refuse_downloads("not here"):
        for fetch, named in ((lambda: download([f"{server.url}/x"], tmp_path / "x", lambda p: None), f"{server.url}/x"),
                             (lambda: open_binary(f"{server.url}/shard.tar"), f"{server.url}/shard.tar"),
                             (lambda: hub_download(parse("hf-hub:someone/nothing-cached")),
                              "hf-hub:someone/nothing-cached (model.safetensors)")):
            with pytest.raises(zoo.ZooError, match=rf"^{re.escape(named)}: not here$"):
                fetch()
    assert len(server.requests) == heard
