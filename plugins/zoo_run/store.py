"""Files each completed build (not sweep variants) in the local store, so ``zoo.load(name)`` finds it."""

from zoo.api import hookimpl, record_build


@hookimpl
def zoo_run_end(run, weights):
    if weights is not None and run.sweep is None:
        run.log(f"recorded {run.name} in the store: {record_build(run.name, weights)}")
