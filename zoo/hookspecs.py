"""Hook specifications: how a plugin adds components to zoo.

Each hook receives a ``register(name, factory)`` callback. ``factory`` is a class or function,
or a ``"module:attribute"`` string imported on first use (keeps ``zoo list`` free of torch).
"""

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_layers(register):
    """Register layers: factories returning a ``torch.nn.Module`` building block."""


@hookspec
def register_models(register):
    """Register models: factories returning a complete, trainable ``torch.nn.Module``."""


@hookspec
def register_datasets(register):
    """Register datasets: factories returning a map-style ``Dataset`` of (input, target) pairs."""


@hookspec
def register_optimizers(register):
    """Register optimizers: factories taking ``params`` first, returning a ``torch.optim.Optimizer``."""


@hookspec
def register_schedulers(register):
    """Register LR schedules: factories taking ``optimizer`` first, returning an LR scheduler."""


@hookspec
def register_losses(register):
    """Register losses: factories returning a module called as ``loss(prediction, target)``."""


# Kind of component -> the hook that registers it.
KINDS = {
    "layer": "register_layers",
    "model": "register_models",
    "dataset": "register_datasets",
    "optimizer": "register_optimizers",
    "scheduler": "register_schedulers",
    "loss": "register_losses",
}
