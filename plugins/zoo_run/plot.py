"""loss.png in a run folder and sweep.png in a sweep's (matplotlib, from the 'plot' extra)."""

from zoo.api import PLOT_HINT, hookimpl, plot_curves


@hookimpl(tryfirst=True)  # the run's files are written before callbacks hear its end (a logger sends them on)
def zoo_run_end(run, weights):
    if weights is not None:
        title = f"{run.name}: {run.sweep}" if run.sweep else run.name
        _draw(run.folder / "loss.png", {run.name: run.history}, title, run.log)


@hookimpl
def zoo_sweep_end(name, folder, runs, log):
    _draw(folder / "sweep.png", {run.label: run.history for run in runs}, f"{name}: train loss against epoch", log)


def _draw(path, histories, title, log) -> None:
    log(f"wrote {path}" if plot_curves(path, histories, title) else f"no plot: {PLOT_HINT}")
