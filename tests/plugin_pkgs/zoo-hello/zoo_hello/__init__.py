"""zoo-hello: adds one layer."""

from zoo.api import hookimpl


@hookimpl
def register_layers(register):
    register("hello-scale", "zoo_hello.layers:Scale")
