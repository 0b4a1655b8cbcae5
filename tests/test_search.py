"""zoo search: a recipe's search section on Optuna -- checked at zoo check, workers sharing one SQLite
study, resumable after a kill, pruning through the epoch-end event, the best trial in the store."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REGRESSION, run_zoo

import zoo

optuna = pytest.importorskip("optuna")


def recipe(folder, trials=4, epochs=2, space=None, **search):
    data = {**REGRESSION, "name": "tiny-search", "train": {**REGRESSION["train"], "epochs": epochs},
            "search": {"trials": trials, "metric": "train_loss", "sampler": "tpe", "pruner": "none",
                       "space": space or {"train.optimizer.lr": {"log": [1.0e-3, 1.0e-1]},
                                          "data.batch_size": [8, 16]}, **search}}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def study(folder):
    return optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{folder / 'study.db'}")


def counts(found):
    states = [t.state.name for t in found.get_trials()]
    return {state: states.count(state) for state in set(states)}


def test_check_refuses_a_bad_space_at_its_line(tmp_path):
    path = recipe(tmp_path, space={"train.optimizr.lr": {"log": [1.0e-3, 1.0e-1]}, "data.batch_size": {"int": [0, 16]},
                                   "train.epochs": {"log": [0, 3]}}, sampler="tpee")
    result = run_zoo("check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    text = "\n".join(lines)
    assert f"{path}:" in lines[0]
    assert "the search.space sets train.optimizr.lr, which the recipe does not have" in text
    assert "Did you mean 'train.optimizer.lr'?" in text
    assert "search.space.train.epochs.log: expects [low, high]: two numbers, low < high, both > 0; got [0, 3]" in text
    assert "search.sampler: expects one of tpe, random, grid, cmaes, got 'tpee'. Did you mean 'tpe'?" in text
    # every bound tried: batch size 0 (the low end) does not assemble
    path = recipe(tmp_path, space={"data.batch_size": {"int": [0, 16]}})
    result = run_zoo("check", str(path))
    assert result.returncode == 2 and "search variant batch_size=0" in result.stderr
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "data.batch_size" in text)
    assert f"{path}:{line}:" in result.stderr


def test_two_workers_share_one_study_and_the_best_is_recorded(tmp_path):
    path = recipe(tmp_path, trials=4)
    out = tmp_path / "search"
    result = run_zoo("search", str(path), "--workers", "2", "--out", str(out), "-p", "no:progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    found = study(out)
    trials = found.get_trials()
    assert counts(found) == {"COMPLETE": 4}
    assert sorted(t.number for t in trials) == list(range(4))
    assert len({t.user_attrs["run"] for t in trials}) == 4  # each trial a folder of its own, intact
    for t in trials:
        assert (out / t.user_attrs["run"] / "weights.safetensors").is_file()
        assert len((out / t.user_attrs["run"] / "metrics.jsonl").read_text().splitlines()) == 2
    assert {p.name for p in out.glob("*.png")} == {"history.png", "importances.png", "parallel.png"}
    [build] = zoo.weights.store.builds("tiny-search")  # only the best is a build
    best = found.best_trial
    assert build.origin == {"search": str(out.resolve()), "trial": best.number, "params": best.params}
    assert build.metrics["train_loss"] == pytest.approx(best.value)
    table = run_zoo("search", str(path), "--out", str(out), "--status").stdout
    assert table.splitlines()[0].split() == ["trial", "state", "batch_size", "lr", "value", "epochs"]
    assert len(table.splitlines()) == 5 and all(" complete " in line for line in table.splitlines()[1:])


def test_a_killed_search_resumes_to_exactly_its_trials(tmp_path):
    path = recipe(tmp_path, trials=4, epochs=60)
    out = tmp_path / "search"
    command = [sys.executable, "-m", "zoo", "-p", "no:progress", "search", str(path), "--out", str(out)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "trial-002").is_dir():  # two trials done, the third running
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = counts(study(out))
    assert killed.get("RUNNING") == 1 and killed.get("COMPLETE", 0) <= 3
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    found = study(out)
    after = counts(found)
    assert after.get("COMPLETE") == 4 and after.get("RUNNING") is None
    assert after.get("FAIL") == 1  # the killed trial, failed when its heartbeat went stale
    retried = [t for t in found.get_trials() if "failed_trial" in t.system_attrs]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"  # and run again with its parameters


def test_pruning_stops_bad_learning_rates_early(tmp_path):
    space = {"train.optimizer.lr": [0.01, 0.011, 0.012, 0.013, 3.0, 4.0]}
    path = recipe(tmp_path, trials=6, epochs=6, space=space, sampler="grid", pruner="median")
    out = tmp_path / "search"
    result = run_zoo("search", str(path), "--out", str(out), "-p", "no:progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = study(out).get_trials()
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    # the median pruner judges a trial once one has finished (a quarter of 6): every bad rate after it is pruned
    bad = [t for t in trials if t.params["train.optimizer.lr"] >= 3.0 and t.number >= 1]
    assert bad and all(t.state.name == "PRUNED" for t in bad)
    assert all(t.user_attrs["epochs"] < 6 for t in pruned)  # stopped early, through the run's stop path
    assert all(t.user_attrs["epochs"] == 6 for t in trials if t.state.name == "COMPLETE")
    stopped = (out / pruned[0].user_attrs["run"] / "metrics.jsonl").read_text().splitlines()
    assert len(stopped) == pruned[0].user_attrs["epochs"]
    assert "pruned by the search after epoch" in result.stdout


def test_without_optuna_the_command_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = run_zoo("search", str(recipe(tmp_path)), cwd=tmp_path)
    assert result.returncode == 2 and "pip install -e '.[search]' in a zoo checkout" in result.stderr
    assert os.listdir(tmp_path) == ["recipe.yaml"] or not (tmp_path / "runs" / "tiny-search" / "study.db").exists()


def test_the_cmaes_sampler_without_its_package_is_one_line_before_any_trial(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else find_spec(name, *a))
    result = run_zoo("search", str(recipe(tmp_path, sampler="cmaes")), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == \
        "zoo: error: search.sampler cmaes needs the cmaes package: pip install cmaes, or choose tpe", result.stderr
    assert not list(tmp_path.glob("runs/tiny-search/trial-*"))  # no trial trained


def test_a_sweep_is_a_study_that_resume_continues(tmp_path):
    data = {**REGRESSION, "name": "tiny-sweep", "sweep": {"train.optimizer.lr": [0.01, 0.02]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "sweep"
    assert run_zoo("build", str(path), "--out", str(out), "-p", "no:progress").returncode == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == ["lr-0.01", "lr-0.02", "study.db", "sweep.csv", "sweep.json", "sweep.png"]
    found = optuna.load_study(study_name="tiny-sweep", storage=f"sqlite:///{out / 'study.db'}")
    assert counts(found) == {"COMPLETE": 2}
    (out / "sweep.json").unlink()
    again = run_zoo("build", str(path), "--out", str(out), "--resume", "-p", "no:progress")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == folders  # nothing trained again; the files written again
    assert counts(found) == {"COMPLETE": 2}


def test_trials_under_torchrun_report_from_rank_0_and_every_rank_stops(tmp_path):
    space = {"train.optimizer.lr": [7.0, 0.01]}  # the grid's seeded order puts the bad rate second
    path = recipe(tmp_path, trials=2, epochs=4, space=space, sampler="grid", pruner="median")
    out = tmp_path / "search"
    first = run_zoo("search", str(path), "--out", str(out), "-p", "no:progress", "--set", "search.trials=1",
                    cwd=tmp_path)  # one trial in this process, the next under torchrun
    assert first.returncode == 0, first.stderr[-3000:]
    result = run_zoo("search", str(path), "--out", str(out), "--nproc", "2", "-p", "no:progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [good, bad] = study(out).get_trials()
    assert good.params["train.optimizer.lr"] == 0.01 and bad.params["train.optimizer.lr"] == 7.0
    assert bad.state.name == "PRUNED" and bad.user_attrs["epochs"] < 4
    meta = zoo.weights.format.read_meta(out / bad.user_attrs["run"] / "weights.safetensors")
    assert meta.processes == 2 and meta.stopped.reason.startswith("pruned by the search")  # both ranks stopped


def test_a_search_and_a_sweep_with_best_checkpoint_record_the_chosen_epochs_metrics_everywhere(tmp_path):
    """The weights file's metrics are the run's: a trial's value, the store's build and a sweep's table
    all read them, so a callback that keeps another epoch than the last is followed everywhere."""
    import csv

    from zoo.training.build import build, search
    from zoo.weights.format import read_meta
    from zoo.weights.store import builds

    registry = zoo.Registry.from_environment(disabled=["progress", "plot"])
    worst = {"component": "best-checkpoint", "monitor": "train_loss", "mode": "max"}  # keeps epoch 1 of 3
    path = recipe(tmp_path, trials=2, epochs=3, space={"train.optimizer.lr": [0.01, 0.02]}, sampler="grid")
    data = yaml.safe_load(path.read_text())
    data["train"]["callbacks"] = [worst]
    path.write_text(yaml.safe_dump(data))
    out = search(str(path), out=tmp_path / "search", registry=registry, log=lambda line: None)
    for trial in study(out).get_trials():
        folder = out / trial.user_attrs["run"]
        first = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][0]
        meta = read_meta(folder / "weights.safetensors")
        assert meta.chosen.epoch == 1 and meta.metrics["train_loss"] == first["train_loss"]
        assert trial.value == first["train_loss"]  # not the last epoch's
    [filed] = builds("tiny-search")
    best = out / study(out).best_trial.user_attrs["run"]
    assert filed.metrics == read_meta(best / "weights.safetensors").metrics
    del data["search"]
    data["sweep"] = {"train.optimizer.lr": [0.01, 0.02]}
    path.write_text(yaml.safe_dump(data))
    folders = build(str(path), out=tmp_path / "sweep", registry=registry, log=lambda line: None)
    with open(tmp_path / "sweep" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    for row, folder in zip(rows, folders):
        first = json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])
        assert float(row["train_loss"]) == pytest.approx(first["train_loss"], rel=1e-12)
    assert builds("tiny-search") == [filed]  # sweep variants are not builds


def test_parallel_workers_draw_distinct_parameters_and_the_search_has_a_folder_of_its_own(tmp_path):
    path = recipe(tmp_path, trials=4, epochs=1, space={"train.optimizer.lr": {"log": [1.0e-3, 1.0e-1]},
                                                       "train.epochs": {"int": [1, 2]}})
    (tmp_path / "runs" / "tiny-search").mkdir(parents=True)  # a build's folder: the search does not write there
    result = run_zoo("search", str(path), "--workers", "2", "--trials", "12", "-p", "no:progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "runs" / "tiny-search-search"
    found = study(out)
    finished = [t for t in found.get_trials() if t.state.name == "COMPLETE"]
    assert len(finished) == 12  # --trials, over the recipe's 4
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 12, [t.params for t in finished]
    assert not any((tmp_path / "runs" / "tiny-search").iterdir())
    table = run_zoo("search", str(path), "--status", cwd=tmp_path).stdout.splitlines()[0].split()
    assert table == ["trial", "state", "train.epochs", "lr", "value", "epochs"]  # no two columns called epochs
    again = run_zoo("search", str(path), "--trials", "12", "-p", "no:progress", cwd=tmp_path)
    assert again.returncode == 0 and "already in the store as tiny-search@1" in again.stdout, again.stderr
    assert [b.version for b in zoo.weights.store.builds("tiny-search")] == [1]  # the rerun filed nothing new


def test_ctrl_c_stops_a_search_with_one_line(tmp_path):
    path = recipe(tmp_path, trials=6, epochs=30)
    process = subprocess.Popen([sys.executable, "-m", "zoo", "search", str(path), "--workers", "2", "-p",
                                "no:progress"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*-search/trial-*/metrics.jsonl")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the command and its workers
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("zoo:")]
    assert len(lines) == 1 and re.fullmatch(r"zoo: search interrupted with \d of its 6 trials finished; the same "
                                            r"command continues the study", lines[0]), err
    assert "Traceback" not in err


def test_check_prints_a_searchs_space_and_the_variants_it_built(tmp_path):
    checked = run_zoo("check", str(recipe(tmp_path)))
    assert checked.returncode == 0, checked.stderr
    assert "search: 4 trials, tpe sampler, none pruner, minimize train_loss; space:" in checked.stdout
    assert "  train.optimizer.lr: log from 0.001 to 0.1" in checked.stdout
    assert "  data.batch_size: one of 8, 16" in checked.stdout
    assert "checked its smallest variant (lr=0.001, batch_size=8) and its largest (lr=0.1, batch_size=16)" in checked.stdout


def _open_at_once(settings, plan, storage, barrier, answers):
    from zoo.training.search import open_study

    barrier.wait()
    try:
        open_study(settings, plan, storage)
        answers.put("ok")
    except Exception as exc:  # what the worker would have died of
        answers.put(f"{type(exc).__name__}: {exc}")


def test_workers_starting_together_on_a_new_storage_create_one_study(tmp_path):
    """8 processes open the same new study at the same moment, 20 times: none dies of the race."""
    import multiprocessing

    pytest.importorskip("optuna")
    from zoo.training.build import read_recipe
    from zoo.training.search import as_search

    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**REGRESSION, "search": {
        "trials": 2, "metric": "test_loss", "space": {"train.optimizer.lr": {"log": [1.0e-4, 1.0e-1]}}}}))
    settings = read_recipe(str(recipe), zoo.default_registry(), [])
    plan = as_search(settings)
    context = multiprocessing.get_context("fork")
    for round_ in range(20):
        storage = f"sqlite:///{tmp_path / f'study-{round_}.db'}"
        barrier, answers = context.Barrier(8), context.Queue()
        workers = [context.Process(target=_open_at_once, args=(settings, plan, storage, barrier, answers))
                   for _ in range(8)]
        for worker in workers:
            worker.start()
        results = [answers.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
        assert results == ["ok"] * 8, (round_, results)
    import optuna

    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [settings.name]


@pytest.mark.parametrize("storage, said", [
    ("ftp://x/y", "Can't load plugin: sqlalchemy.dialects:ftp"),
    ("sqlite:////no/such/folder/x.db", "unable to open database file"),
    ("sqlite:///{tmp}/garbage.db", "file is not a database"),
])
def test_a_storage_zoo_cannot_use_is_one_line(tmp_path, storage, said):
    pytest.importorskip("optuna")
    (tmp_path / "garbage.db").write_text("not a database\n" * 100)
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**REGRESSION, "search": {
        "trials": 1, "metric": "test_loss", "space": {"train.optimizer.lr": {"log": [1.0e-4, 1.0e-1]}}}}))
    out = run_zoo("search", str(recipe), "--storage", storage.format(tmp=tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "zoo: error: the study's storage" in out.stderr and said in out.stderr and "internal error" not in out.stderr


def test_a_study_resumed_with_another_kind_of_space_is_one_line(tmp_path):
    pytest.importorskip("optuna")
    path = tmp_path / "search.yaml"
    search = {"trials": 1, "metric": "train_loss", "space": {"train.optimizer.lr": {"log": [1.0e-4, 1.0e-1]}}}
    path.write_text(yaml.safe_dump({**REGRESSION, "search": search}))
    assert run_zoo("search", str(path), "-p", "no:progress", cwd=tmp_path).returncode == 0
    path.write_text(yaml.safe_dump({**REGRESSION, "search": {**search, "space": {"train.optimizer.lr": [0.001, 0.01]}}}))
    again = run_zoo("search", str(path), "--trials", "2", "-p", "no:progress", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "search.space.train.optimizer.lr: the study's earlier trials drew it from another kind of range" in again.stderr
