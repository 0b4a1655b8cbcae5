"""Metrics whose value is a matrix (a confusion matrix): written after each evaluation as
``{split}_{metric}.csv`` and ``.png`` in the run folder, rows and columns named by the data's classes."""

import csv
import io

from zoo.api import PLOT_HINT, atomic_write_bytes, hookimpl, plot_matrix


@hookimpl
def zoo_evaluation_end(run, epoch, split, metrics):
    if not run.is_main:
        return
    for name, value in metrics.items():
        if getattr(value, "dim", lambda: 0)() != 2:
            continue
        rows, cols = value.shape
        labels = run.classes if run.classes and len(run.classes) == rows == cols else [str(i) for i in range(rows)]
        path = run.folder / f"{split}_{name}.csv"
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["true \\ predicted", *labels])
        writer.writerows([label, *row] for label, row in zip(labels, value.tolist()))
        atomic_write_bytes(path, text.getvalue().encode())
        title = f"{run.name}: {name.replace('_', ' ')} on {split}, epoch {epoch}"
        if not plot_matrix(path.with_suffix(".png"), value, labels, title) and epoch == 1:
            run.log(f"no {path.with_suffix('.png').name}: {PLOT_HINT}")
