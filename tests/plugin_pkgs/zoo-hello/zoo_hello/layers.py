import torch
from torch import Tensor, nn


class Scale(nn.Module):
    """Multiply the input by a learned scalar, initialised to ``init``."""

    def __init__(self, init: float = 2.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale
