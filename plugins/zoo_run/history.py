"""metrics.jsonl in the run folder: one JSON record per finished epoch."""

from zoo.api import hookimpl, write_history


@hookimpl
def zoo_epoch_end(run):
    if run.is_main:
        write_history(run.folder, run.history)
