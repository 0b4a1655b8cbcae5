"""Notebook cell "MNIST MLP": train the 784-312-256-10 classifier with Adam, then predict with it.

zoo: the shipped `mnist-mlp` recipe (the notebook's settings) built through zoo's API, and
`zoo.load("mnist-mlp@latest")`, the build just recorded. ZOO_EXAMPLES_TINY=1 trains one epoch.
"""

import os

import torch

import zoo
from zoo.training.build import build

epochs = 1 if os.environ.get("ZOO_EXAMPLES_TINY") else 42
[run] = build("mnist-mlp", [f"train.epochs={epochs}"], registry=zoo.Registry.from_environment(disabled=["progress"]))

model = zoo.load("mnist-mlp@latest")  # the build just recorded; plain "mnist-mlp" is the published model
images, labels = zoo.create("mnist", split="test").batch(slice(0, 1000))
with torch.no_grad():
    predicted = model(images).argmax(-1)
print(f"run folder: {run}")
print(f"accuracy on the first 1000 test images: {(predicted == labels).float().mean().item():.4f}")
print(f"predicted {predicted[:10].tolist()}")
print(f"labels    {labels[:10].tolist()}")
