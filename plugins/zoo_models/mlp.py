"""Fully connected models of the reference notebook."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MnistMLP(nn.Module):
    """Flatten -> Linear(784, 312) -> ReLU -> Linear(312, 256) -> ReLU -> Linear(256, 10) classifier.

    Parameter names match the notebook's ``NeuralNetwork`` (``linear_relu_stack.0.weight``, ...),
    so its state dicts load unchanged.
    """

    example = {"input": [2, 1, 28, 28]}  # for zoo.testing.check_component

    def __init__(self, in_features: int = 784, hidden: Sequence[int] = (312, 256), num_classes: int = 10):
        super().__init__()
        widths = [in_features, *hidden]
        stack: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:]):
            stack += [nn.Linear(width_in, width_out), nn.ReLU()]
        stack.append(nn.Linear(widths[-1], num_classes))
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(*stack)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_relu_stack(self.flatten(x))


class SimpleNet(nn.Module):
    """One linear layer: the notebook's SimpleNet regression model."""

    example = {"input": [4, 3]}  # for zoo.testing.check_component

    def __init__(self, in_features: int = 3, out_features: int = 5):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)
