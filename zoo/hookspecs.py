"""Hook specifications: what a plugin can add to zoo, and the events of a training run it can act on.

Registration hooks receive a ``register(name, factory)`` callback. ``factory`` is a class or function,
or a ``"module:attribute"`` string imported on first use (keeps ``zoo list`` free of torch).

Lifecycle hooks are called through pluggy during ``zoo build``, on every process of a torchrun job
(``run.is_main`` is true on rank 0 only; write files there). zoo's own run features -- console lines,
progress bar, metrics.jsonl, checkpoints, the loss plot, the local store -- are plugins on them. Every
lifecycle hook receives ``run``, a :class:`zoo.runs.Run`: the settings, the run folder, the model, the
training state and ``run.log``. Hooks are called with keyword arguments; an implementation may take
any subset of them. An exception raised in a hook stops the run with an error naming the plugin and
the hook.
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


@hookspec
def register_metrics(register):
    """Register evaluation metrics: factories returning an object with ``update(output, target)``
    (per batch, on the device, no host sync), ``compute()`` (a number, combined over torchrun
    processes) and ``reset()``, and ``to(device)``; a torchmetrics metric is one. zoo supplies
    ``num_classes`` (the model's last output dimension) to a factory that takes it."""


@hookspec
def register_callbacks(register):
    """Register callbacks, which a recipe names in ``train.callbacks``: factories returning an object
    whose methods named after lifecycle events (``zoo_epoch_end(self, run, epoch, metrics)`` ...) are
    called before the plugins' hooks, with any subset of that event's arguments by name. Optional
    ``state_dict()`` / ``load_state_dict(state)`` keep its state in checkpoints across ``--resume``."""


@hookspec
def register_transforms(register):
    """Register transforms, which a recipe lists in ``data.transform`` / ``data.eval_transform``:
    factories returning a callable ``transform(x, y, generator) -> (x, y)`` that changes a batch of
    inputs ``x`` and targets ``y`` as whole tensors on the device, keeping the batch size and dtypes;
    random choices draw from ``generator`` (seeded per batch), and with ``generator=None``
    (evaluation) an augmentation returns the batch unchanged. See zoo.transforms."""


@hookspec
def register_catalogs(register):
    """Register catalogs the plugin ships: ``register(path)``, the path of a YAML file in the format of
    zoo's registry.yaml -- ``models`` (pretrained weights: a file inside the plugin's package, or a
    url, with its sha256 and the figures it scores) and ``recipes`` (paths relative to the file).
    ``zoo.load``, ``zoo list --pretrained`` / ``--recipes``, ``zoo info``, ``zoo verify`` and
    ``zoo build NAME`` then find them, each named with its plugin."""


@hookspec
def register_commands(register):
    """Register command-line commands: ``register(name, run, help="", arguments=None)``;
    ``arguments(parser)`` adds argparse arguments to the command's parser, ``run(args)`` does the
    work and returns an exit status. A name a built-in or another plugin's command has is refused
    with a warning naming the plugin; a command that raises is an error naming it."""


@hookspec
def zoo_run_start(run):
    """The run is assembled (and restored, with ``--resume``: ``run.resumed``); training starts next."""


@hookspec
def zoo_epoch_start(run, epoch):
    """Epoch ``epoch`` (counted from 1) starts, or resumes mid-way at ``run.position.step``."""


@hookspec
def zoo_train_step(run, epoch, step, loss):
    """After optimizer step ``step`` of ``epoch``; ``loss`` is that batch's mean loss as a 0-d tensor on the
    device. Reading it (``.item()``) forces a host sync; with no implementation this hook costs nothing."""


@hookspec
def zoo_train_progress(run, epoch, step, steps, loss):
    """Every ``train.log_every`` steps and at the epoch's last: ``step`` of ``steps`` done, ``loss`` the
    epoch's mean training loss so far (a float, summed over processes)."""


@hookspec
def zoo_evaluation_end(run, epoch, split, metrics):
    """Evaluation on ``split`` after epoch ``epoch`` ended; ``metrics`` maps 'loss' etc. to floats, and
    a metric whose value is not one number (a confusion matrix) to a CPU tensor, which the epoch's
    record leaves out."""


@hookspec
def zoo_epoch_end(run, epoch, metrics):
    """Epoch ``epoch`` ended; ``metrics`` is its record (epoch, train_loss, {split}_loss..., seconds),
    already appended to ``run.history``."""


@hookspec
def zoo_checkpoint_saved(run, path, epoch, step):
    """A checkpoint of the run after ``step`` batches of epoch ``epoch`` was written to ``path`` (rank 0)."""


@hookspec
def zoo_interrupted(run, epoch, step):
    """Ctrl-C stopped the run after ``step`` batches of epoch ``epoch``; it ends with Interrupted next."""


@hookspec
def zoo_train_end(run):
    """The last epoch ended (or ``run.stop`` was asked for); the weights are saved next. A callback may
    put other weights into ``run.model`` here (the best epoch's) and say which with ``run.choose``."""


@hookspec
def zoo_run_end(run, metrics, weights):
    """Training finished; ``metrics`` are those of the saved weights (the final epoch's, or the chosen
    one's); ``weights`` is the saved weights file on rank 0 (None on other ranks)."""


@hookspec
def zoo_sweep_end(name, folder, runs, log):
    """Every variant of sweep ``name`` was trained into ``folder`` (sweep.json and sweep.csv written);
    ``runs`` are their finished runs in order (``run.sweep`` is each one's label); ``log`` prints."""


# Kind of component -> the hook that registers it.
KINDS = {
    "layer": "register_layers",
    "model": "register_models",
    "dataset": "register_datasets",
    "optimizer": "register_optimizers",
    "scheduler": "register_schedulers",
    "loss": "register_losses",
    "metric": "register_metrics",
    "callback": "register_callbacks",
    "transform": "register_transforms",
}

# Hooks that add to zoo besides components.
EXTENSIONS = ("register_catalogs", "register_commands")

# The lifecycle hooks, in the order a run meets them.
EVENTS = (
    "zoo_run_start", "zoo_epoch_start", "zoo_train_step", "zoo_train_progress", "zoo_evaluation_end",
    "zoo_epoch_end", "zoo_checkpoint_saved", "zoo_interrupted", "zoo_train_end", "zoo_run_end", "zoo_sweep_end",
)
