"""Plots of training runs (matplotlib, from the 'plot' extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from zoo.files import atomic_path

INSTALL_HINT = "pip install 'zoo[plot]' (matplotlib) to get plots"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def curves(path: Path, runs: dict[str, list[dict]], title: str = "") -> bool:
    """Loss against epoch, one curve per run (train and evaluation loss for a single run), plus
    accuracy when recorded. Returns False, writing nothing, when matplotlib is missing."""
    if not available():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(runs.values()))[0]
    eval_loss = next((k for k in first if k.endswith("_loss") and k != "train_loss"), None)
    accuracy = next((k for k in first if k.endswith("_accuracy")), None)
    has_accuracy = accuracy is not None
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(12 if has_accuracy else 7, 4.5), squeeze=False)
    loss_ax = axes[0][0]
    single = len(runs) == 1
    for label, history in runs.items():
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r["train_loss"] for r in history], marker=".", label="train loss" if single else label)
        if single and eval_loss:
            loss_ax.plot(epochs, [r[eval_loss] for r in history], marker=".", label=eval_loss.replace("_", " "))
        if has_accuracy:
            axes[0][1].plot(epochs, [r.get(accuracy) for r in history], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="mean loss", title=title or "loss")
    loss_ax.grid(True, alpha=0.3)
    loss_ax.legend()
    if has_accuracy:
        axes[0][1].set(xlabel="epoch", ylabel="accuracy", title=accuracy.replace("_", " "))
        axes[0][1].grid(True, alpha=0.3)
        axes[0][1].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True
