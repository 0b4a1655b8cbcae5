"""Files each completed build in the local store as its next version, so ``zoo.load(name)`` finds
it and ``zoo builds NAME`` lists it. What a run is for (``run.purpose``) decides: a sweep's variants,
a search's trials and a reproduction are not builds of the recipe (a search files its best trial
itself); the figures filed are those the weights file records."""

from zoo.api import hookimpl, record_build


@hookimpl(tryfirst=True)  # before callbacks hear the run's end, so that they find ``run.label``
def zoo_run_end(run, weights):
    if weights is not None and run.purpose == "build":
        build = record_build(run.name, weights)
        run.label = build.label
        run.log(f"recorded {run.name} in the store as {build.label}: {build.path}")
