"""bf16 autocast against float32 on this machine: the shipped mnist-mlp and transformer-encoder-reverse
recipes, each trained with ``train.precision`` 32 and bf16 in one run (same seed, same data).

For each: the median seconds per epoch (the first epoch is left out: it pays one-off costs) and the
final test accuracy. Runs are interleaved (32, bf16, 32, bf16 ...) over --repeat rounds and the
best median of each counts, so a slow spell of the machine hits both.

    python benchmarks/precision.py [--epochs N] [--repeat 2]

Last line: ``bf16/fp32 seconds per epoch: mnist-mlp X.XX, transformer-encoder-reverse Y.YY``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import zoo
from zoo.text import table
from zoo.training.build import build

RECIPES = ("mnist-mlp", "transformer-encoder-reverse")
PRECISIONS = ("32", "bf16")


def train(recipe: str, precision: str, epochs: int | None, folder: Path) -> tuple[float, float, int]:
    """Median seconds per epoch after the first, the final test accuracy, and the epochs run."""
    overrides = [f"train.precision={precision}", "train.device=cpu"] + ([f"train.epochs={epochs}"] if epochs else [])
    registry = zoo.Registry.from_environment(disabled=["progress", "plot", "store", "console"])
    [out] = build(recipe, overrides, registry=registry, out=folder / f"{recipe}-{precision}", overwrite=True,
                  log=lambda s: None)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in history[1:]] or [history[0]["seconds"]]
    return statistics.median(seconds), history[-1]["test_accuracy"], len(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs per run (default: each recipe's own)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best median counts")
    args = parser.parse_args()
    best: dict[tuple[str, str], tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for recipe in RECIPES:
                for precision in PRECISIONS:
                    result = train(recipe, precision, args.epochs, Path(tmp))
                    if (recipe, precision) not in best or result[0] < best[recipe, precision][0]:
                        best[recipe, precision] = result
    rows = [(recipe, precision, f"{s:.3f}", f"{accuracy:.4f}", str(epochs))
            for (recipe, precision), (s, accuracy, epochs) in best.items()]
    print(table(("RECIPE", "PRECISION", "S/EPOCH", "TEST ACCURACY", "EPOCHS"), rows, right=(2, 3, 4)))
    ratios = ", ".join(f"{recipe} {best[recipe, 'bf16'][0] / best[recipe, '32'][0]:.2f}" for recipe in RECIPES)
    print(f"bf16/fp32 seconds per epoch: {ratios}")


if __name__ == "__main__":
    main()
