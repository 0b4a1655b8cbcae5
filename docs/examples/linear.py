"""Notebook cell "Linear": a Linear(10, 5) layer on a batch of 8.

zoo: the `linear` layer from the registry.
"""

import torch

import zoo

torch.manual_seed(0)
layer = zoo.create("linear", in_features=10, out_features=5)
x = torch.randn(8, 10)
with torch.no_grad():
    y = layer(x)
print(f"input shape:  {tuple(x.shape)}")
print(f"output shape: {tuple(y.shape)}")
print("equals x @ W.T + b:", torch.allclose(y, x @ layer.weight.T + layer.bias))
