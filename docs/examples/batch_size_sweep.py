"""Notebook cell "batch size": SimpleNet trained by SGD on 1,000 random samples with batch sizes from
1 to 1000; loss against epoch, one curve per batch size.

zoo: the shipped `simple-net-batch-sweep` recipe; its `sweep:` key trains one variant per batch
size and draws them in one plot (runs/simple-net-batch-sweep/sweep.png, with sweep.csv).
ZOO_EXAMPLES_TINY=1 trains 2 epochs instead of 10.
"""

import os

import zoo
from zoo.training import folders as runs
from zoo.training.build import build

overrides = ["train.epochs=2"] if os.environ.get("ZOO_EXAMPLES_TINY") else []
registry = zoo.Registry.from_environment(disabled=["progress"])
folders = build("simple-net-batch-sweep", overrides, registry=registry, log=lambda line: None)
name, histories = runs.read(folders[0].parent)
for label, history in histories.items():
    print(f"{label:16s} final train loss {history[-1]['train_loss']:.4f}")
print(f"plot: {folders[0].parent / 'sweep.png'}")
