"""Built-in callbacks a recipe names in ``train.callbacks``: early stopping, the best epoch's weights,
and loggers (CSV, TensorBoard, learning rate)."""

from zoo.api import hookimpl


@hookimpl
def register_callbacks(register):
    register("early-stopping", "zoo_callbacks.monitoring:EarlyStopping")
    register("best-checkpoint", "zoo_callbacks.monitoring:BestCheckpoint")
    register("csv-logger", "zoo_callbacks.loggers:CsvLogger")
    register("tensorboard", "zoo_callbacks.loggers:TensorBoard")
    register("lr-monitor", "zoo_callbacks.loggers:LearningRateMonitor")
