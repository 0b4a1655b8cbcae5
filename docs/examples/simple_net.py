"""Notebook cell "SimpleNet": one Linear(3, 5) layer applied to a batch of two samples.

zoo: the `simple-net` model from the registry.
"""

import torch

import zoo

torch.manual_seed(0)
model = zoo.create("simple-net")  # in_features 3, out_features 5, as the notebook
x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
with torch.no_grad():
    y = model(x)
print("input:", x.tolist())
print(f"output shape: {tuple(y.shape)}")
print("output:", [[round(v, 4) for v in row] for row in y.tolist()])
print("equals x @ W.T + b:", torch.allclose(y, x @ model.linear.weight.T + model.linear.bias))
