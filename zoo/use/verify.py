"""``zoo verify``: re-score a model on its dataset and split: a catalog model against the figures its
catalog declares, any other weights (a local build, a file, ``hf-hub:``) against those their file
records."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.assembly.parts import evaluation, record_name
from zoo.errors import ZooError
from zoo.recipe import catalog
from zoo.recipe.schema import Settings
from zoo.registry import Registry
from zoo.training.loop import evaluate
from zoo.weights.load import assembler, load, settings
from zoo.weights.metadata import WeightsMeta

TOLERANCE = 0.001


@dataclass(frozen=True)
class Check:
    metric: catalog.Metric
    measured: float
    source: str = "catalog"  # where the expected figure comes from: "catalog" or "recorded" (the file)

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.metric.value) <= TOLERANCE


def verify(name: str, registry: Registry) -> list[Check]:
    """Each figure the catalog declares for model ``name`` -- or, for weights not in a catalog, each
    metric their file records -- measured again on its dataset split."""
    model = load(name, registry)
    recipe = settings(model)
    entry = catalog.get(model.zoo_source.label, registry) if model.zoo_source.source == "catalog" else None
    figures = entry.metrics if entry else _recorded(model.zoo_meta, recipe)
    if not figures:
        raise ZooError(f"{model.zoo_source.label}: declares no figure to verify (no catalog metrics, no recorded "
                       "evaluation metric)")
    checks = []
    for metric in figures:
        if not any(node.name == metric.metric for node in recipe.metrics):
            raise ZooError(f"the catalog declares metric '{metric.metric}' of {name}, which its recipe does not list")
        scored = evaluation(recipe, assembler(model.zoo_meta, registry), model, metric.split)
        scores = evaluate(model, scored.data, scored.loss, scored.metrics, transform=scored.transform)
        checks.append(Check(metric, scores[record_name(metric.metric)], "catalog" if entry else "recorded"))
    return checks


def _recorded(meta: WeightsMeta, recipe: Settings) -> list[catalog.Metric]:
    split = meta.evaluation.split if meta.evaluation else None
    keys = [(node.name, f"{split}_{record_name(node.name)}") for node in recipe.metrics]
    return [catalog.Metric(recipe.data.dataset.name, split, name, meta.metrics[key])
            for name, key in keys if split and key in meta.metrics]
