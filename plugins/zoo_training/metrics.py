"""Evaluation metrics on torchmetrics: streaming (``update`` per batch on the device, ``compute`` once),
and combined across torchrun processes from their summed states, not from averaged ratios.

Predictions are (..., classes) logits or (..., outputs) values and targets (...) the same leading
shape, as zoo's losses take them; a sequence model's positions are samples, and targets of -100
(padding) are left out.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

IGNORE = -100


class Flat:
    """A torchmetrics metric fed flattened predictions: (N, classes) logits or (N,) values."""

    def __init__(self, metric, classes: bool):
        self.metric, self.classes = metric, classes

    def update(self, output: Tensor, target: Tensor) -> None:
        if self.classes:
            self.metric.update(output.reshape(-1, output.shape[-1]), target.reshape(-1))
        else:
            self.metric.update(output.reshape(-1), target.reshape(-1).to(output.dtype))

    def compute(self) -> Tensor:
        return self.metric.compute()

    def reset(self) -> None:
        self.metric.reset()

    def to(self, device: torch.device) -> Flat:
        self.metric = self.metric.to(device)
        return self


def accuracy(num_classes: int, top_k: int = 1) -> Flat:
    """Share of predictions whose true class is the top one (or among the ``top_k``); per token for
    sequence models, padding (-100) left out."""
    from torchmetrics.classification import MulticlassAccuracy

    return Flat(MulticlassAccuracy(num_classes, top_k=top_k, average="micro", ignore_index=IGNORE,
                                   validate_args=False), classes=True)


def top_k_accuracy(num_classes: int, k: int = 5) -> Flat:
    """Share of predictions whose true class is among the ``k`` highest scores."""
    return accuracy(num_classes, top_k=k)


def macro_f1(num_classes: int) -> Flat:
    """F1 score of each class, averaged over the classes with equal weight."""
    from torchmetrics.classification import MulticlassF1Score

    return Flat(MulticlassF1Score(num_classes, average="macro", ignore_index=IGNORE, validate_args=False), True)


def micro_f1(num_classes: int) -> Flat:
    """F1 score over all predictions pooled (equals accuracy for single-label classification)."""
    from torchmetrics.classification import MulticlassF1Score

    return Flat(MulticlassF1Score(num_classes, average="micro", ignore_index=IGNORE, validate_args=False), True)


def confusion_matrix(num_classes: int, normalize: Literal["none", "true", "pred", "all"] = "none") -> Flat:
    """Counts of each (true class, predicted class) pair; saved as CSV and a plot in the run folder.

    Rows are true classes, columns predicted ones; ``normalize`` divides by the row (``true``), column
    (``pred``) or grand total (``all``)."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    return Flat(MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE, normalize=normalize,
                                          validate_args=False), classes=True)


def mse() -> Flat:
    """Mean squared error over all predicted values."""
    from torchmetrics.regression import MeanSquaredError

    return Flat(MeanSquaredError(), classes=False)


def mae() -> Flat:
    """Mean absolute error over all predicted values."""
    from torchmetrics.regression import MeanAbsoluteError

    return Flat(MeanAbsoluteError(), classes=False)
