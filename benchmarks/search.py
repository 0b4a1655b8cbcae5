"""Search against the full grid, on mnist-mlp (the 5,000 bundled MNIST images, scored on the 10,000
test images): three hyperparameters with three values each (27 variants).

- grid: every variant (a ``sweep``, run by ``zoo search`` as a grid study), ``--epochs`` each;
- search: TPE with median pruning over the same space, ``--trials`` trials, with 2 workers, then
  again with 1 worker for the wall time.

Reports the best test accuracy and the epochs each trained, and the wall time of 1 and 2 workers.

    python benchmarks/search.py [--epochs 6] [--trials 12] [--values 3]

Last line: ``search: epochs/grid X.XX, accuracy gap X.XXXX`` (gap: the grid's best minus the search's).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPACE = {"train.optimizer.lr": [1.0e-4, 1.0e-3, 1.0e-2], "data.batch_size": [32, 128, 512],
         "model.hidden": [[64], [256], [312, 256]]}


def recipe(epochs: int, values: int, search: dict | None) -> dict:
    space = {key: choices[:values] for key, choices in SPACE.items()}
    base = {"name": "mnist-search", "model": {"component": "mnist-mlp", "hidden": [312, 256]},
            "data": {"dataset": {"component": "mnist"}, "batch_size": 128, "eval_batch_size": 2000,
                     "eval_split": "test"},
            "train": {"epochs": epochs, "seed": 0, "optimizer": {"component": "adam", "lr": 1.0e-3},
                      "loss": "cross-entropy"},
            "metrics": ["accuracy"]}
    if search is None:
        return {**base, "sweep": space}
    return {**base, "search": {**search, "space": space}}


def run(folder: Path, data: dict, workers: int) -> tuple[float, float, int, int]:
    """Best test accuracy, wall seconds, epochs trained and trials of a ``zoo search`` in ``folder``."""
    import optuna

    folder.mkdir(parents=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoo", "-p", "no:progress", "-p", "no:plot", "search", str(path),
                    "--out", str(folder / "runs"), "--workers", str(workers)], check=True, cwd=folder,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name="mnist-search", storage=f"sqlite:///{folder / 'runs' / 'study.db'}")
    trials = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    best = max(t.value for t in trials if t.state.name == "COMPLETE")
    return best, seconds, sum(t.user_attrs["epochs"] for t in trials), len(trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per variant (default 6)")
    parser.add_argument("--trials", type=int, default=12, help="trials of the search (default 12)")
    parser.add_argument("--values", type=int, default=3, help="values per hyperparameter (default 3: 27 variants)")
    args = parser.parse_args()
    search = {"trials": args.trials, "metric": "test_accuracy", "sampler": "tpe", "pruner": "median"}
    with tempfile.TemporaryDirectory() as tmp:
        grid_best, grid_seconds, grid_epochs, grid_trials = run(Path(tmp) / "grid", recipe(args.epochs, args.values, None), 2)
        print(f"grid: {grid_trials} variants, {grid_epochs} epochs, best test accuracy {grid_best:.4f} "
              f"({grid_seconds:.0f} s with 2 workers)", flush=True)
        found = {}
        for workers in (2, 1):
            found[workers] = run(Path(tmp) / f"tpe-{workers}", recipe(args.epochs, args.values, search), workers)
            best, seconds, epochs, trials = found[workers]
            print(f"TPE + median pruning, {workers} worker(s): {trials} trials, {epochs} epochs, best test accuracy "
                  f"{best:.4f}, {seconds:.0f} s", flush=True)
    best, _, epochs, _ = found[2]
    print(f"wall time 1 worker / 2 workers: {found[1][1] / found[2][1]:.2f}")
    print(f"search: epochs/grid {epochs / grid_epochs:.2f}, accuracy gap {grid_best - best:.4f}")


if __name__ == "__main__":
    main()
