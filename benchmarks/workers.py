"""DataLoader workers: training on images decoded from PNG files, sample by sample.

The bundled 5,000 real MNIST training images are written as PNG files under a temporary
``ROOT/train/<digit>/`` and read through zoo's ``image-folder`` dataset (Pillow decoding in
``__getitem__``). mnist-mlp trains with Adam lr 1e-4, batch 320, shuffled, for --epochs epochs:

- zoo ``fit`` with ``workers: 0`` (decoding in the training process);
- zoo ``fit`` with ``workers: N`` (persistent worker processes, the default prefetch);
- a hand-written loop over ``DataLoader(num_workers=N, persistent_workers=True, shuffle=True)``.

Each loop's best epoch counts (the first one includes starting the workers).

    python benchmarks/workers.py [--workers 2] [--epochs 3]

Last line: ``workers/none: X.XX  zoo/hand: Y.YY`` (seconds per epoch; lower is better).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

import zoo
from zoo.recipe.parse import Recipe
from zoo.recipe.schema import validate
from zoo.registry.events import Events
from zoo.training.build import new_run
from zoo.training.loop import fit

BATCH, LR = 320, 1e-4


def write_pngs(root: Path) -> None:
    images, labels = zoo.create("mnist").tensors()
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        folder = root / "train" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(folder / f"{i:05d}.png")


def zoo_epochs(root: str, workers: int, epochs: int) -> float:
    """The code path of ``zoo build`` on the PNG folder (no run plugins listening)."""
    recipe = {"name": "workers", "model": "mnist-mlp",
              "data": {"dataset": {"component": "image-folder", "root": root}, "batch_size": BATCH,
                       "eval_split": None, "workers": workers},
              "train": {"epochs": epochs, "optimizer": {"component": "adam", "lr": LR}, "loss": "cross-entropy"}}
    run = new_run(validate(Recipe(recipe, {}, Path("workers.yaml"))), Path(root) / "run",
                  registry=zoo.default_registry(), log=lambda line: None)
    run.events = Events([])
    return min(record["seconds"] for record in fit(run))


def hand_epochs(data, workers: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = zoo.create("mnist-mlp")
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    best = float("inf")
    for _ in range(epochs):
        started = time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_pngs(Path(folder))
        data = zoo.create("image-folder", split="train", root=folder)
        none = zoo_epochs(folder, 0, args.epochs)
        some = zoo_epochs(folder, args.workers, args.epochs)
        hand = hand_epochs(data, args.workers, args.epochs)
    print(f"{len(data)} PNG images, seconds per epoch: zoo workers=0 {none:.2f}  "
          f"zoo workers={args.workers} {some:.2f}  hand-written workers={args.workers} {hand:.2f}")
    print(f"workers/none: {some / none:.2f}  zoo/hand: {some / hand:.2f}")


if __name__ == "__main__":
    main()
