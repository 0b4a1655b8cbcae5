"""Built-in optimizers, LR schedules, losses, metrics and training strategies."""

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


@hookimpl
def register_metrics(register):
    register("accuracy", "zoo_training.metrics:accuracy")
    register("top-k-accuracy", "zoo_training.metrics:top_k_accuracy")
    register("macro-f1", "zoo_training.metrics:macro_f1")
    register("micro-f1", "zoo_training.metrics:micro_f1")
    register("confusion-matrix", "zoo_training.metrics:confusion_matrix")
    register("mse", "zoo_training.metrics:mse")
    register("mae", "zoo_training.metrics:mae")


@hookimpl
def register_strategies(register):
    register("ddp", "zoo_training.strategies:DDP")
    register("fsdp", "zoo_training.strategies:FSDP")
