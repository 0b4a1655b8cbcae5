"""``zoo verify``: re-score a catalog model on its declared dataset and split."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.assembly.parts import evaluation, record_name
from zoo.errors import ZooError
from zoo.recipe import catalog
from zoo.registry import Registry
from zoo.training.loop import evaluate
from zoo.weights.load import load, settings

TOLERANCE = 0.001


@dataclass(frozen=True)
class Check:
    metric: catalog.Metric
    measured: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.metric.value) <= TOLERANCE


def verify(name: str, registry: Registry) -> list[Check]:
    """Each figure the catalog declares for model ``name``, measured again on its dataset split."""
    entry = catalog.get(name, registry)
    if entry is None:
        raise ZooError(f"no model '{name}' in the catalog; see 'zoo list --pretrained'")
    model = load(name, registry)
    recipe = settings(model)
    checks = []
    for metric in entry.metrics:
        if not any(node.name == metric.metric for node in recipe.metrics):
            raise ZooError(f"the catalog declares metric '{metric.metric}' of {name}, which its recipe does not list")
        scored = evaluation(recipe, registry, model, metric.split, pins=model.zoo_meta.components)
        scores = evaluate(model, scored.data, scored.loss, scored.metrics, transform=scored.transform)
        checks.append(Check(metric, scores[record_name(metric.metric)]))
    return checks
