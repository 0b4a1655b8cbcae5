"""``zoo verify``: re-score a catalog model on its declared dataset and split."""

from __future__ import annotations

from dataclasses import dataclass

from zoo import catalog
from zoo.assembly import Assembler
from zoo.errors import ZooError
from zoo.loading import load
from zoo.registry import default_registry
from zoo.schema import recorded
from zoo.training import evaluate

TOLERANCE = 0.001


@dataclass(frozen=True)
class Check:
    metric: catalog.Metric
    measured: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.metric.value) <= TOLERANCE


def verify(name: str) -> list[Check]:
    """Load the catalog weights of ``name`` and measure each metric the catalog declares."""
    entry = catalog.get(name)
    if entry is None:
        raise ZooError(f"no model '{name}' in the catalog; see 'zoo list --pretrained'")
    model = load(name, source="catalog")
    settings = recorded(model.zoo_meta["recipe"], entry.folder / entry.recipe)
    assembler = Assembler(default_registry())
    loss = assembler.build(settings.train.loss, ("loss",))
    checks = []
    for metric in entry.metrics:
        data = assembler.dataset(settings.data, metric.split)
        scores = evaluate(model, data, loss, batch_size=1000, metrics=(metric.metric,))
        if metric.metric not in scores:
            raise ZooError(f"zoo cannot measure metric '{metric.metric}' of {name}")
        checks.append(Check(metric, scores[metric.metric]))
    return checks
