"""zoo models as an MLflow ``pyfunc`` model: the weights file as the model's data and this module as
its loader, so nothing is pickled. ``mlflow.pyfunc.load_model`` gives a model whose ``predict``
is ``zoo predict`` (``params={"top_k": 3}`` for fewer classes); its signature is the raw input of
the input spec (images as uint8 pixels, token ids as int64), as zoo serve's v2 protocol takes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.api import InputSpec, Registry, ZooError, facts, install_hint, load_located, locate, predict, zoo_version

INSTALL = install_hint("mlflow")
TOP_K = 5


def mlflow():
    """The mlflow package, or a ZooError saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ZooError(f"zoo's MLflow support needs the mlflow package: {INSTALL}") from None
    return mlflow


def signature(spec: InputSpec | None):
    """The MLflow signature of a model taking ``spec`` inputs: one unnamed tensor of a batch of raw
    inputs, and ``top_k``; None for a file from before input specs."""
    if spec is None:
        return None
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(spec.raw_dtype), (-1, *spec.shape))]),
                          params=ParamSchema([ParamSpec("top_k", "long", TOP_K)]))


def example(spec: InputSpec | None) -> np.ndarray | None:
    """One input of ``spec``: a black image, a sequence of padding, zeros."""
    if spec is None:
        return None
    fill = spec.pad_id if spec.kind == "tokens" else 0
    return np.full((1, *spec.shape), fill, dtype=spec.raw_dtype)


def save(folder: Path, weights: Path, spec: InputSpec | None, mlflow_model=None) -> None:
    """Write the pyfunc model of the zoo weights file ``weights`` into ``folder`` (which must not exist)."""
    mlflow().pyfunc.save_model(str(folder), loader_module=__name__, data_path=str(weights),
                               signature=signature(spec), input_example=example(spec), mlflow_model=mlflow_model,
                               pip_requirements=[f"zoo-models=={zoo_version}"])


class ZooModel:
    """A zoo model as pyfunc's ``_load_pyfunc`` returns it."""

    def __init__(self, weights: Path):
        registry = Registry.from_environment()
        self.model = load_located(locate(str(weights), registry), registry)
        self.known = facts(self.model, registry)

    def predict(self, model_input: object, params: dict | None = None) -> list[dict]:
        """What ``zoo predict`` gives for ``model_input`` (a batch of raw inputs)."""
        return predict(self.model, model_input, (params or {}).get("top_k", TOP_K), known=self.known)


def _load_pyfunc(data_path: str) -> ZooModel:
    """MLflow's entry point: ``data_path`` is the weights file logged with the model."""
    return ZooModel(Path(data_path))
