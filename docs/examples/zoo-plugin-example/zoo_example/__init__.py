"""zoo-plugin-example: the hooks. Factories are "module:attribute" strings, imported on first use,
so `zoo list` stays fast and never imports torch for this plugin."""

from zoo.api import hookimpl


@hookimpl
def register_layers(register):
    register("gated-linear", "zoo_example.layers:GatedLinear")


@hookimpl
def register_datasets(register):
    register("two-spirals", "zoo_example.datasets:two_spirals")
