"""MLflow tracking and registry for zoo builds, on MLflow's client API (no global state: a recipe's
``tracking_uri`` or MLflow's own, from ``MLFLOW_TRACKING_URI``).

- ``mlflow-logger``, a callback: a run per build with the resolved recipe as params, every epoch's
  numbers as metrics (step = epoch), the run folder's files as artifacts, the weights as a logged
  pyfunc model and the store's label as a tag; a resumed build goes on logging to its run.
- ``zoo push MODEL mlflow:NAME``: the build as the next version of registered model NAME (the model
  its build logged, when there is one, so the version links to its training run)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from zoo.api import Pushed, ZooError, may_fetch, read_meta

from zoo_mlflow.flavor import mlflow, save

PREFIX = "mlflow:"
EXPERIMENT = "zoo"  # where zoo push logs a model that no build logged
ARTIFACTS = (".yaml", ".jsonl", ".csv", ".png", ".json")  # a run folder's files sent with the run
MAX_KEY, MAX_VALUE, BATCH = 250, 6000, 100  # MLflow's limits on a param's key and value, and per call


class MlflowLogger:
    """Log the run to MLflow (rank 0 only): params, per-epoch metrics, artifacts and the model.

    ``tracking_uri`` defaults to MLflow's own (``MLFLOW_TRACKING_URI``, else its default store);
    ``experiment`` to the recipe's name, ``run_name`` to the run folder's. ``log_model: false`` sends
    the weights file as a plain artifact instead of a pyfunc model. Needs the ``mlflow`` extra."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None,
                 log_model: bool = True):
        self.client_class = mlflow().MlflowClient
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.log_model = log_model
        self.client = None
        self.run_id: str | None = None

    def zoo_run_start(self, run):
        if not run.is_main:
            return
        if self.tracking_uri is not None:  # a recipe chose where the run is sent
            may_fetch(f"mlflow-logger's tracking_uri {self.tracking_uri}")
        self.client = client = self.client_class(self.tracking_uri)
        try:
            if self.run_id is not None and _exists(client, self.run_id):  # resumed: the checkpoint's run
                client.update_run(self.run_id, status="RUNNING")
                run.log(f"logging to MLflow: {client.tracking_uri}, run {self.run_id} (resumed)")
                return
            tags = {"zoo.recipe": run.name, "zoo.folder": str(run.folder), "zoo.purpose": run.purpose,
                    "mlflow.source.name": "zoo build", **({"zoo.variant": run.sweep} if run.sweep else {})}
            self.run_id = client.create_run(experiment(client, self.experiment or run.name),
                                            run_name=self.run_name or run.folder.name, tags=tags).info.run_id
            log_params(client, self.run_id, flat(run.settings.recipe.data))
        except _errors() as exc:
            raise ZooError(f"mlflow-logger: cannot log to {client.tracking_uri}: {_first(exc)}") from None
        run.log(f"logging to MLflow: {client.tracking_uri}, run {self.run_id}")

    def zoo_epoch_end(self, run, epoch, metrics):
        if self.client is None:  # not rank 0
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        numbers = [Metric(key, float(value), now, epoch) for key, value in metrics.items()
                   if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)]
        self.client.log_batch(self.run_id, metrics=numbers)

    def zoo_run_end(self, run, weights):
        if self.client is None:  # not rank 0
            return
        for path in sorted(run.folder.iterdir()):
            if path.is_file() and path.suffix in ARTIFACTS:
                self.client.log_artifact(self.run_id, str(path))
        if run.label:
            self.client.set_tag(self.run_id, "zoo.label", run.label)
        if weights is not None and self.log_model:
            log_model(self.client, self.client.get_run(self.run_id).info.experiment_id, Path(weights),
                      run_id=self.run_id, step=len(run.history), label=run.label)
        elif weights is not None:
            self.client.log_artifact(self.run_id, str(weights))
        self.client.set_terminated(self.run_id)

    def zoo_interrupted(self, run):
        if self.client is not None:
            self.client.set_terminated(self.run_id, "KILLED")

    def state_dict(self) -> dict:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict) -> None:
        self.run_id = state["run_id"]


def log_model(client, experiment_id: str, weights: Path, *, run_id: str | None = None, step: int = 0,
              label: str | None = None):
    """Log the zoo weights file ``weights`` as a pyfunc model of the experiment (and of the run, when
    given); the LoggedModel, tagged with the build's label and the tensors' sha256."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    meta = read_meta(weights)
    tags = {"zoo.recipe": meta.name, "zoo.tensors_sha256": meta.tensors_sha256,
            **({"zoo.label": label} if label else {})}
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id, tags=tags,
                                        params={key: value for key, value in flat(meta.recipe)})
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        save(folder, weights, meta.input, Model(artifact_path=logged.artifact_location, model_id=logged.model_id,
                                                run_id=run_id))
        client.log_model_artifacts(logged.model_id, str(folder))
    if run_id is not None:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return client.get_logged_model(logged.model_id)


def push(model, dest: str) -> Pushed | None:
    """``zoo push MODEL mlflow:NAME``: ``model`` as the next version of registered model NAME, in
    MLflow's registry (``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``); nothing when its latest
    version holds these weights already."""
    if not dest.startswith(PREFIX):
        return None
    name = dest[len(PREFIX):]
    if not name.strip() or len(name) > MAX_KEY or any(ord(c) < 32 or c in "/\\" for c in name):
        raise ZooError(f"'{dest[:80]}': mlflow:NAME names a registered model: 1 to {MAX_KEY} characters, no / or \\")
    client = mlflow().MlflowClient()
    meta, source = model.zoo_meta, model.zoo_source
    try:
        latest = next(iter(client.search_model_versions(f"name = '{_quoted(name)}'", max_results=1,
                                                        order_by=["version_number DESC"])), None)
        if latest is not None and latest.tags.get("zoo.tensors_sha256") == meta.tensors_sha256:
            return Pushed(dest, (), version=str(latest.version))
        logged = _logged(client, meta.tensors_sha256) or log_model(
            client, experiment(client, EXPERIMENT), Path(source.path), label=source.label)
        if latest is None and not _registered(client, name):
            client.create_registered_model(name, tags={"zoo.recipe": meta.name})
        version = client.create_model_version(
            name, source=f"models:/{logged.model_id}", run_id=logged.source_run_id, model_id=logged.model_id,
            tags={"zoo.label": source.label, "zoo.tensors_sha256": meta.tensors_sha256})
    except _errors() as exc:
        raise ZooError(f"{dest[:80]}: MLflow at {client.tracking_uri} refused: {_first(exc)}") from None
    return Pushed(dest, ("model",), version=str(version.version))


def experiment(client, name: str) -> str:
    """The id of the experiment called ``name``, made if there is none (by another process too)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # made meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def flat(recipe: object, prefix: str = "") -> list[tuple[str, str]]:
    """A resolved recipe as MLflow params: 'train.epochs' -> '3', lists as JSON, each within MLflow's limits."""
    if isinstance(recipe, dict) and recipe:
        return [pair for key, value in recipe.items() for pair in flat(value, f"{prefix}{key}.")]
    text = recipe if isinstance(recipe, str) else json.dumps(recipe)
    return [(prefix.rstrip(".")[:MAX_KEY], text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "...")]


def log_params(client, run_id: str, params: list[tuple[str, str]]) -> None:
    from mlflow.entities import Param

    for start in range(0, len(params), BATCH):
        client.log_batch(run_id, params=[Param(key, value) for key, value in params[start:start + BATCH]])


def _logged(client, tensors_sha256: str):
    """The model a build logged with these tensors, newest first, in any experiment; else None."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_logged_models(experiment_ids=experiments, max_results=1,
                                        filter_string=f"tags.`zoo.tensors_sha256` = '{tensors_sha256}'",
                                        order_by=[{"field_name": "creation_time", "ascending": False}])
    return found[0] if found else None


def _registered(client, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{_quoted(name)}'", max_results=1))


def _exists(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _errors() -> tuple[type[Exception], ...]:
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


def _first(exc: Exception) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]
