"""zoo-extras: an error-rate metric, an event-log callback and a shift-labels transform."""

from zoo.api import hookimpl


@hookimpl
def register_metrics(register):
    register("error-rate", "zoo_extras.parts:ErrorRate")


@hookimpl
def register_callbacks(register):
    register("event-log", "zoo_extras.parts:EventLog")


@hookimpl
def register_transforms(register):
    register("shift-labels", "zoo_extras.parts:shift_labels")
