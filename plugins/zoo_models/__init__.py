"""Built-in models: the complete networks of the reference notebook."""

from zoo.api import hookimpl


@hookimpl
def register_models(register):
    register("mnist-mlp", "zoo_models.mlp:MnistMLP")
    register("simple-net", "zoo_models.mlp:SimpleNet")
    register("transformer-encoder", "zoo_models.encoder:TransformerEncoder")
