"""Built-in layers: the building blocks of the reference notebook, registered by name."""

from zoo.api import hookimpl

LAYERS = {
    "linear": "zoo_layers.basic:linear",
    "relu": "zoo_layers.basic:relu",
    "flatten": "zoo_layers.basic:flatten",
    "dropout": "zoo_layers.basic:dropout",
    "layer-norm": "zoo_layers.basic:layer_norm",
    "embedding": "zoo_layers.basic:embedding",
    "sequential": "zoo_layers.basic:sequential",
    "feed-forward": "zoo_layers.feed_forward:FeedForward",
    "positional-encoding": "zoo_layers.positional:PositionalEncoding",
    "split-heads": "zoo_layers.heads:SplitHeads",
    "merge-heads": "zoo_layers.heads:MergeHeads",
    "multi-head-attention": "zoo_layers.attention:MultiHeadAttention",
}


@hookimpl
def register_layers(register):
    for name, factory in LAYERS.items():
        register(name, factory)
