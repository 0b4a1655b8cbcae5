"""Figures (matplotlib, from the 'plot' extra): training curves, activation statistics, head splits."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import ZooError
from zoo.names import install
from zoo.files import atomic_path

INSTALL_HINT = f"{install('plot', 'matplotlib')} to get plots"


def available() -> bool:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


def require(command: str) -> None:
    """Fail with the install hint when matplotlib is missing."""
    if not available():
        raise ZooError(f"{command} draws with matplotlib, which is not installed: {INSTALL_HINT}")


@contextmanager
def _figure(path: Path, columns: int, width: float, height: float = 4.5) -> Iterator[list]:
    """A row of ``columns`` axes, saved atomically to ``path`` as PNG on leaving."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(width, height), squeeze=False, layout="constrained")
    try:
        yield list(axes[0])
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def _finish(ax, xlabel: str, ylabel: str, title: str, whole_x: bool = False) -> None:
    """Labels, a light grid, and a legend (when there are curves to tell apart) outside the data."""
    from matplotlib.ticker import MaxNLocator

    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    if whole_x:  # epochs: 1, 2, 3, never 1.25
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(ax.get_lines()) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")


def curves(path: Path, runs: Mapping[str, Sequence[dict]], title: str = "") -> bool:
    """Loss against epoch, one curve per run (train and evaluation loss for a single run), and the
    evaluation metrics on a second panel when recorded (every one for a single run, the first for a
    sweep's runs). Returns False, writing nothing, when matplotlib is missing."""
    from zoo.training.folders import RECORD_FACTS

    if not available():
        return False
    first = next(iter(runs.values()))[0]
    eval_loss = next((k for k in first if k.endswith("_loss") and k != "train_loss"), None)
    scores = [k for k in first if k not in RECORD_FACTS and not k.endswith("_loss")]
    single = len(runs) == 1
    with _figure(path, 2 if scores else 1, 12 if scores else 7) as axes:
        for label, history in runs.items():
            epochs = [r["epoch"] for r in history]
            axes[0].plot(epochs, [r["train_loss"] for r in history], marker=".", label="train loss" if single else label)
            if single and eval_loss:
                axes[0].plot(epochs, [r[eval_loss] for r in history], marker=".", label=eval_loss.replace("_", " "))
            for score in scores if single else scores[:1]:
                axes[1].plot(epochs, [r.get(score) for r in history], marker=".",
                             label=score.replace("_", " ") if single else label)
        _finish(axes[0], "epoch", "mean loss per sample" if single else "train loss (mean per sample)",
                title or "loss", whole_x=True)
        if scores:
            shown = scores if single else scores[:1]
            _finish(axes[1], "epoch", "metric" if len(shown) > 1 else shown[0].replace("_", " "),
                    ", ".join(s.replace("_", " ") for s in shown), whole_x=True)
    return True


def matrix(path: Path, values, labels: Sequence[str], title: str) -> bool:
    """A confusion matrix as a heat map, rows true classes and columns predicted ones, each cell
    written out when there are at most 20 classes. Returns False, writing nothing, without matplotlib."""
    if not available():
        return False
    size = max(5.0, 0.45 * len(labels) + 2)
    with _figure(path, 1, size + 1.5, size) as (ax,):
        shown = ax.imshow(values, cmap="Blues", interpolation="nearest")
        ax.figure.colorbar(shown, ax=ax)
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right")
        ax.set_yticks(ticks, labels)
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
        if len(labels) <= 20:
            top = float(values.max()) or 1.0
            for (row, col), value in zip(((r, c) for r in ticks for c in ticks), values.flatten().tolist()):
                text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
                ax.text(col, row, text, ha="center", va="center", fontsize="small",
                        color="white" if value > top / 2 else "black")
    return True


def feature_stats(path: Path, stats: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str) -> None:
    """Per-feature mean (left) and standard deviation (right), one curve per entry of ``stats``."""
    with _figure(path, 2, 12, 5) as (mean_ax, std_ax):
        for label, (mean, std) in stats.items():
            mean_ax.plot(mean, label=f"{label} mean")
            std_ax.plot(std, label=f"{label} std")
        _finish(mean_ax, "feature", "mean", f"{title}: mean of each feature")
        _finish(std_ax, "feature", "standard deviation", f"{title}: std of each feature")


def head_split(path: Path, before, after) -> None:
    """Heat maps of one sample before split-heads, shape (length, heads*d), and after, (heads, length, d):
    the whole sample, its first position as one row, and that position split into heads."""
    heads, _, head_dim = after.shape
    panels = [
        (before, f"input: {before.shape[0]} positions x {before.shape[1]} features", "feature", "position"),
        (before[:1], "input, first position", "feature", ""),
        (after[:, 0], f"split: first position, {heads} heads x {head_dim}", "head dimension", "head"),
    ]
    from matplotlib.ticker import MaxNLocator

    with _figure(path, 3, 18, 5) as axes:
        for ax, (image, title, xlabel, ylabel) in zip(axes, panels):
            shown = ax.imshow(image, aspect="auto", cmap="viridis", interpolation="nearest")
            ax.figure.colorbar(shown, ax=ax)
            ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].set_yticks([])
