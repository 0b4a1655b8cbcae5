"""A tqdm progress bar per epoch, updated at each host sync (every ``train.log_every`` steps), when
stderr is a terminal: in a log file the console plugin's one line per epoch says it all."""

from zoo.api import hookimpl

_bars: dict = {}  # run -> its open bar


@hookimpl
def zoo_train_progress(run, epoch, step, steps, loss):
    if not run.is_main:
        return
    bar = _bars.get(run)
    if bar is None:
        from tqdm import tqdm

        bar = _bars[run] = tqdm(total=steps, desc=f"epoch {epoch}/{run.settings.train.epochs}", unit="batch",
                                leave=False, dynamic_ncols=True, disable=None)  # None: off unless a terminal
    bar.update(step - bar.n)
    bar.set_postfix(loss=f"{loss:.4f}")
    if step == steps:
        _close(run)


@hookimpl
def zoo_interrupted(run):
    _close(run)


def _close(run) -> None:
    bar = _bars.pop(run, None)
    if bar is not None:
        bar.close()
