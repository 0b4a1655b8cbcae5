"""zoo-clash: a 'gated-linear' (the example plugin has one) and a 'relu' (zoo has one), both doing
something else, a command named like a built-in one, and a command whose arguments fail."""

from zoo.api import hookimpl


def other(in_features: int = 2, out_features: int = 64):
    """Not a gated linear unit: a plain linear layer under the same name."""
    import torch

    return torch.nn.Linear(in_features, out_features)


def leaky():
    """Not zoo's relu: a leaky one."""
    import torch

    return torch.nn.LeakyReLU(0.5)


@hookimpl
def register_layers(register):
    register("gated-linear", other)
    register("relu", leaky)


@hookimpl
def register_commands(register):
    register("list", lambda args: 0, help="a command that would replace zoo list")
    register("clash-broken", lambda args: 0, help="a command whose arguments raise", arguments=lambda parser: 1 / 0)
