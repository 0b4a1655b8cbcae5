"""Training throughput of mnist-mlp: zoo's trainer against a hand-written loop and the notebook's loop.

The same model (initialised from the same seed), data and hyper-parameters (Adam lr 1e-4, batch 320,
cross-entropy) for each. Epochs are interleaved -- one of each loop per round, after an untimed
warm-up round -- so drift on the machine hits all three alike; each loop's best epoch is compared.

    python benchmarks/train_throughput.py [--epochs 2] [--rows 60000]

Last line: ``zoo/hand: X.XX  notebook/zoo: Y.YY`` (seconds per epoch; lower zoo/hand is better).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import zoo
from zoo.assembly.data import InMemoryDataset
from zoo.recipe.parse import Recipe
from zoo.recipe.schema import validate
from zoo.registry.events import Events
from zoo.training.build import new_run
from zoo.training.loop import Position, fit

BATCH, LR = 320, 1e-4
RECIPE = {"name": "throughput", "model": "mnist-mlp",
          "data": {"dataset": "mnist", "batch_size": BATCH, "eval_split": None},
          "train": {"epochs": 1, "optimizer": {"component": "adam", "lr": LR}, "loss": "cross-entropy", "log_every": 50}}


def data(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled real training images, tiled to ``rows``."""
    images, labels = zoo.create("mnist").tensors()
    reps = -(-rows // len(labels))
    return images.repeat(reps, 1, 1, 1)[:rows], labels.repeat(reps)[:rows]


def zoo_loop(images, labels):
    """The code path of ``zoo build``: the recipe's run, trained by ``fit`` (no run plugins listening; its
    checkpoint at each epoch's end, as zoo build's, in a temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    run = new_run(validate(Recipe(RECIPE, {}, Path("throughput.yaml"))), folder, registry=zoo.default_registry(),
                  log=lambda line: None)
    run.parts.train_data = InMemoryDataset(images, labels, divide_by=255)
    run.events = Events([])

    def epoch():
        run.position = Position()
        fit(run)

    return epoch


def hand_loop(images, labels):
    """A plain hand loop: the whole set as one float tensor, batches sliced from a permutation."""
    torch.manual_seed(0)
    model = zoo.create("mnist-mlp")
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = images.float().div(255), labels
    generator = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), BATCH):
            index = order[start : start + BATCH]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


class NotebookDataset(Dataset):
    """The notebook's dataset: one numpy row converted to tensors per ``__getitem__``."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        return torch.tensor(np.reshape(self.x[index], [28 * 28])), torch.tensor(self.y[index])


def notebook_loop(images, labels):
    """The notebook's loop: DataLoader over that dataset, ``loss.item()`` every step."""
    torch.manual_seed(0)
    model = zoo.create("mnist-mlp")
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(NotebookDataset(images.float().div(255).numpy(), labels.numpy()), batch_size=BATCH)

    def epoch():
        total = 0.0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop (default 2)")
    parser.add_argument("--rows", type=int, default=60_000, help="training rows (default 60000)")
    args = parser.parse_args()
    images, labels = data(args.rows)
    loops = {"zoo": zoo_loop(images, labels), "hand": hand_loop(images, labels),
             "notebook": notebook_loop(images, labels)}
    times: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(args.epochs + 1):
        for name, epoch in loops.items():
            started = time.perf_counter()
            epoch()
            if round_:  # round 0 warms up
                times[name].append(time.perf_counter() - started)
    print(f"mnist-mlp, {args.rows} rows, batch {BATCH}, Adam lr {LR}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name, seconds in times.items():
        print(f"{name:9s} best {min(seconds):.3f} s/epoch   mean {sum(seconds) / len(seconds):.3f}")
    best = {name: min(seconds) for name, seconds in times.items()}
    print(f"zoo/hand: {best['zoo'] / best['hand']:.2f}  notebook/zoo: {best['notebook'] / best['zoo']:.2f}")


if __name__ == "__main__":
    main()
