"""zoo-extras: an error-rate metric and an event-log callback."""

from zoo.api import hookimpl


@hookimpl
def register_metrics(register):
    register("error-rate", "zoo_extras.parts:ErrorRate")


@hookimpl
def register_callbacks(register):
    register("event-log", "zoo_extras.parts:EventLog")
