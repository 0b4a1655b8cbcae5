"""``zoo verify``: re-score a catalog model on its declared dataset and split."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo import catalog
from zoo.assembly import Assembler, build_metrics, first_batch, record_name
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
    device = next(model.parameters()).device
    transform = assembler.transforms(settings.data.eval_transform)
    checks = []
    for metric in entry.metrics:
        data = assembler.dataset(settings.data, metric.split)
        node = next((n for n in settings.metrics if n.name == metric.metric), None)
        if node is None:
            raise ZooError(f"the catalog declares metric '{metric.metric}' of {name}, which its recipe does not list")
        x, y = first_batch(data, 8)
        x, y = x.to(device), y.to(device)
        if transform is not None:
            x, y = transform(x, y, None)
        with torch.no_grad():
            out = model(x)
        built = build_metrics((node,), assembler, device, out, y)
        scores = evaluate(model, data, loss, batch_size=1000, metrics=built, device=device, transform=transform)
        checks.append(Check(metric, scores[record_name(metric.metric)]))
    return checks
