"""zoo with MLflow, against a local SQLite tracking store: the mlflow-logger callback (a build
interrupted and resumed is one MLflow run), the pyfunc flavour predicting what zoo predict does
(in Python and through MLflow's scoring server, the app of ``mlflow models serve``), and zoo push
into MLflow's model registry."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

import zoo
from conftest import run_zoo

mlflow = pytest.importorskip("mlflow")

RECIPES = Path(zoo.__file__).parent / "recipes"


def digits_recipe(epochs: int, logged: bool = True, **logger) -> dict:
    callbacks = [{"component": "mlflow-logger", **logger}] if logged else []
    return {"name": "digits", "extends": str(RECIPES / "mnist-mlp.yaml"),
            "train": {"epochs": epochs, "callbacks": callbacks}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite tracking store, and a 2-epoch build logged to it: interrupted by Ctrl-C after epoch 1,
    then resumed."""
    from zoo.training.loop import Interrupted
    from zoo_mlflow.tracking import MlflowLogger

    folder = tmp_path_factory.mktemp("mlflow")
    heard = MlflowLogger.zoo_epoch_end

    def interrupt_after_epoch_1(self, run, epoch, metrics):
        heard(self, run, epoch, metrics)
        if epoch == 1 and not run.resumed:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop saves a checkpoint and stops

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow keeps a SQLite store's artifacts in ./mlruns
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        with pytest.MonkeyPatch.context() as interrupting:
            interrupting.setattr(MlflowLogger, "zoo_epoch_end", interrupt_after_epoch_1)
            with pytest.raises(Interrupted, match="interrupted at epoch 2, batch 0"):
                zoo.build(digits_recipe(2), out=folder / "run")
            said = []
            built = zoo.build(digits_recipe(2), out=folder / "run", resume=True, log=said.append)
        yield mlflow.MlflowClient(), built, folder, said


@pytest.fixture
def tracking(store, monkeypatch):
    client, built, folder, _ = store
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    return client, built


def test_a_build_interrupted_and_resumed_is_one_mlflow_run_with_its_epochs_params_and_files(tracking, store):
    client, built = tracking
    experiment = client.get_experiment_by_name("digits")
    (run,) = client.search_runs([experiment.experiment_id])
    assert f"logging to MLflow: {client.tracking_uri}, run {run.info.run_id} (resumed)" in store[3]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.tags["zoo.label"] == built.label == "digits@1" and run.data.tags["zoo.purpose"] == "build"
    for key in ("test_accuracy", "test_loss", "train_loss"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2], key  # epoch 1 once, though the run was resumed after it
    assert history[-1].value == pytest.approx(built.metrics["train_loss"])
    assert client.get_metric_history(run.info.run_id, "test_accuracy")[-1].value == built.metrics["test_accuracy"]
    params = run.data.params
    assert params["name"] == "digits" and params["train.epochs"] == "2" and params["train.optimizer.lr"] == "0.0001"
    assert params["model.component"] == "mnist-mlp" and params["data.dataset.component"] == "mnist"
    assert params["metrics"] == '["accuracy"]'  # a list as JSON
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recipe.yaml", "metrics.jsonl", "loss.png"} <= files
    (logged,) = client.search_logged_models([experiment.experiment_id])
    assert logged.source_run_id == run.info.run_id and logged.tags["zoo.label"] == "digits@1"
    assert logged.tags["zoo.tensors_sha256"] == zoo.load(built.weights).zoo_meta.tensors_sha256


def digits(count: int = 6) -> np.ndarray:
    images, _ = zoo.create("mnist", split="test").tensors()
    return images[:count].numpy()


def test_the_logged_pyfunc_model_predicts_what_zoo_predict_does_and_says_its_input(tracking):
    client, built = tracking
    (logged,) = client.search_logged_models([client.get_experiment_by_name("digits").experiment_id])
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    inputs = model.metadata.signature.inputs.inputs
    assert len(inputs) == 1 and inputs[0].type == np.dtype("uint8") and inputs[0].shape == (-1, 1, 28, 28)
    x = digits()
    want = zoo.predict(built.weights, x, top_k=3)
    assert model.predict(x, params={"top_k": 3}) == want
    assert [p["top"][0]["label"] for p in model.predict(x)] == [p["top"][0]["label"] for p in want]
    assert model.metadata.flavors["python_function"]["loader_module"] == "zoo_mlflow.flavor"  # no pickled model
    files = {Path(f.path).name for f in client.list_logged_model_artifacts(logged.model_id)}
    assert "MLmodel" in files and not [f for f in files if f.endswith((".pkl", ".pickle"))], files


def test_mlflow_models_serve_answers_as_zoo_predict(tracking):
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    client, built = tracking
    (logged,) = client.search_logged_models([client.get_experiment_by_name("digits").experiment_id])
    app = scoring_server.init(mlflow.pyfunc.load_model(f"models:/{logged.model_id}"))
    x = digits(2)
    answer = TestClient(app).post("/invocations", json={"inputs": x.tolist(), "params": {"top_k": 2}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == zoo.predict(built.weights, x, top_k=2)


def test_zoo_push_registers_versions_in_mlflows_registry(tracking, tmp_path):
    client, built = tracking
    first = zoo.push(built.weights, "mlflow:digits")
    assert str(first) == "mlflow:digits: registered version 1"
    again = zoo.push(built.weights, "mlflow:digits")
    assert again.version == "1" and not again.changed and "unchanged" in str(again)
    version = client.get_model_version("digits", "1")
    run = client.search_runs([client.get_experiment_by_name("digits").experiment_id])[0]
    assert version.run_id == run.info.run_id  # the model its build logged: the version links to its training run
    # a build not logged to MLflow: zoo push logs its model (experiment 'zoo'), then registers it
    other = zoo.build(digits_recipe(1, logged=False), out=tmp_path / "run")
    result = run_zoo("push", str(other.weights), "mlflow:digits")
    assert result.returncode == 0 and result.stdout.strip() == "mlflow:digits: registered version 2", result.stderr
    x = digits()
    assert mlflow.pyfunc.load_model("models:/digits/2").predict(x) == zoo.predict(other.weights, x)
    assert mlflow.pyfunc.load_model("models:/digits/1").predict(x) == zoo.predict(built.weights, x)
    assert client.get_model_version("digits", "2").tags["zoo.tensors_sha256"] == zoo.load(
        other.weights).zoo_meta.tensors_sha256


def test_mlflow_destinations_and_tracking_uris_are_checked(tracking, tmp_path):
    from zoo.files import refuse_downloads

    _, built = tracking
    for dest in ("mlflow:", "mlflow:a/b", "mlflow:" + "x" * 300):
        with pytest.raises(zoo.ZooError, match="mlflow:NAME names a registered model"):
            zoo.push(built.weights, dest)
    # a reproduction of a stranger's file sends nothing to a tracking URI its recipe names
    with refuse_downloads("a reproduction fetches nothing unless allowed"), pytest.raises(
            zoo.ZooError, match="mlflow-logger's tracking_uri sqlite:///elsewhere.db: a reproduction fetches nothing"):
        zoo.build(digits_recipe(1, tracking_uri="sqlite:///elsewhere.db"), out=tmp_path / "run")
    assert not Path("elsewhere.db").exists()


def test_without_mlflow_installed_the_logger_and_push_say_how_to_install_it(tracking, monkeypatch, tmp_path):
    _, built = tracking
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # import mlflow fails, as when not installed
    with pytest.raises(zoo.ZooError, match=r"zoo's MLflow support needs the mlflow package: pip install -e '\.\[mlflow\]'"):
        zoo.push(built.weights, "mlflow:digits")
    with pytest.raises(zoo.ZooError, match="needs the mlflow package"):
        zoo.build(digits_recipe(1), out=tmp_path / "run")


def test_on_other_ranks_a_resumed_logger_sends_nothing(tracking):
    """Every rank restores the checkpoint's run id; only rank 0, which opened the run, logs to it."""
    from zoo_mlflow.tracking import MlflowLogger

    logger = MlflowLogger()
    logger.load_state_dict({"run_id": "run-of-rank-0"})
    logger.zoo_epoch_end(run=None, epoch=2, metrics={"train_loss": 0.5})
    logger.zoo_interrupted(run=None)
    logger.zoo_run_end(run=None, weights=None)
    assert logger.state_dict() == {"run_id": "run-of-rank-0"}
