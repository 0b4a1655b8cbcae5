"""Files each completed build (not sweep variants) in the local store as its next version, so
``zoo.load(name)`` finds it and ``zoo builds NAME`` lists it."""

from zoo.api import hookimpl, record_build


@hookimpl
def zoo_run_end(run, weights):
    if weights is not None and run.sweep is None:
        build = record_build(run.name, weights, metrics=run.metrics, recipe=run.settings.recipe.data)
        run.log(f"recorded {run.name} in the store as {build.label}: {build.path}")
