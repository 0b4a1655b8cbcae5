"""zoo with MLflow (the ``mlflow`` extra): the ``mlflow-logger`` callback, zoo models as MLflow
pyfunc models (``mlflow.pyfunc.load_model`` predicts what ``zoo predict`` does), and ``zoo push
MODEL mlflow:NAME`` into MLflow's model registry."""

from zoo.api import hookimpl


@hookimpl
def register_callbacks(register):
    register("mlflow-logger", "zoo_mlflow.tracking:MlflowLogger")


@hookimpl
def push_model(model, dest):
    from zoo_mlflow.tracking import PREFIX, push

    return push(model, dest) if dest.startswith(PREFIX) else None
