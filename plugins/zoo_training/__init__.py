"""Built-in optimizers, LR schedules and losses."""

from zoo.api import hookimpl


@hookimpl
def register_optimizers(register):
    register("adam", "zoo_training.optimizers:adam")
    register("adamw", "zoo_training.optimizers:adamw")
    register("sgd", "zoo_training.optimizers:sgd")


@hookimpl
def register_schedulers(register):
    register("cosine", "zoo_training.schedules:cosine")
    register("one-cycle", "zoo_training.schedules:one_cycle")


@hookimpl
def register_losses(register):
    register("cross-entropy", "zoo_training.losses:CrossEntropy")
    register("mse", "zoo_training.losses:mse")
