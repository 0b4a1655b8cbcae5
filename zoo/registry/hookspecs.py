"""Hook specifications: what a plugin can add to zoo, and the events of a training run it can act on.

Registration hooks receive a ``register(name, factory)`` callback. ``factory`` is a class or function,
or a ``"module:attribute"`` string imported on first use (keeps ``zoo list`` free of torch).

Lifecycle hooks are called through pluggy during ``zoo build``, on every process of a torchrun job
(``run.is_main`` is true on rank 0 only; write files there). zoo's own run features -- console lines,
progress bar, metrics.jsonl, the loss plot, the local store -- are plugins on them, and
a recipe's callbacks (``train.callbacks``) are registered on them for the run they belong to, before
the plugins, so they hear each event first, in the order the recipe lists them. Every run event
receives ``run``, a :class:`zoo.training.run.Run` (not annotated here: the registry is the layer below
training). Hooks are called with keyword arguments; an
implementation may take any subset of them. An exception raised in a hook stops the run with an
error naming the plugin (or the callback and its recipe line) and the hook.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import torch

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
    processes) and ``reset()``, and ``to(device)``; a torchmetrics metric is one."""


@hookspec
def register_callbacks(register):
    """Register callbacks, which a recipe names in ``train.callbacks``: factories returning an object
    whose methods named after run events (``zoo_epoch_end(self, run, epoch, metrics)`` ...) are
    registered for that run like a plugin's hooks, taking any subset of the event's arguments.
    Optional ``state_dict()`` / ``load_state_dict(state)`` keep its state in checkpoints."""


@hookspec
def register_transforms(register):
    """Register transforms, which a recipe lists in ``data.transform`` / ``data.eval_transform``:
    factories returning a callable ``transform(x, y, generator) -> (x, y)`` that changes a batch of
    inputs ``x`` and targets ``y`` as whole tensors on the device, keeping the batch size and dtypes;
    random choices draw from ``generator`` (seeded per batch), and with ``generator=None``
    (evaluation) an augmentation returns the batch unchanged. See zoo.assembly.transforms."""


@hookspec
def register_exporters(register):
    """Register export formats, which ``zoo export --format NAME`` writes: factories returning an
    object with ``suffix`` (the file ending), ``write(module, example, path)`` (the module takes a
    batch like ``example``, whose first dimension is dynamic) and ``read(path)`` (the exported file
    as a function of a batch, for the parity check); optional ``needs`` names the modules it imports
    and ``extra`` the pip line that installs them. See zoo.use.export."""


@hookspec
def register_strategies(register):
    """Register training strategies, which ``train.strategy`` names: factories returning an object that
    trains one model over the processes of a torchrun job -- shards or wraps it, syncs its gradients,
    gives its state for checkpoints and gathers its weights (the protocol in zoo.assembly.strategy;
    zoo's checkpoint manager writes and reads the checkpoints). zoo's own are ``ddp`` and ``fsdp``."""


@hookspec
def register_catalogs(register):
    """Register catalogs the plugin ships: ``register(path)``, the path of a YAML file in the format of
    zoo's registry.yaml -- ``models`` (pretrained weights: a file inside the plugin's package, or a
    url, with its sha256 and the figures it scores) and ``recipes`` (paths relative to the file).
    ``zoo.load``, ``zoo list --pretrained`` / ``--recipes``, ``zoo info``, ``zoo verify`` and
    ``zoo build NAME`` then find them; a name zoo's own catalog has means zoo's entry, and the
    plugin's needs ``plugin:name``."""


@hookspec
def register_commands(register):
    """Register command-line commands: ``register(name, run, help="", arguments=None, description="")``;
    ``arguments(parser)`` adds argparse arguments to the command's parser, ``run(args)`` does the
    work and returns an exit status (``args.registry`` is the registry the command line loaded). zoo's
    own commands are registered this way too (zoo.cli). A name another command has is refused with a
    warning naming the plugin; a command that raises is an error naming it."""


@hookspec(firstresult=True)
def convert_weights(path, config, source):
    """A Hub repo's ``model.safetensors`` (at ``path``) has no zoo metadata: if ``config`` (its
    config.json, a dict) is the format of a library this plugin bridges, return the zoo record of
    the file's tensors as they are -- a :class:`zoo.weights.metadata.WeightsMeta` with the model node,
    the input spec and its preprocessing, the class names and ``imported`` (library, tag, license) --
    else None. zoo writes the tensors with that record as a zoo file, once, and verifies it like any
    other; ``source`` is the ``hf-hub:`` name with its commit, which zoo records."""


@hookspec(firstresult=True)
def import_weights(name, url, folder):
    """``zoo import NAME`` (``torchvision:resnet18.IMAGENET1K_V1``): if ``NAME`` is this plugin's,
    fetch those weights with the library's own loader (into ``folder``; from ``url`` when given,
    a mirror) and return ``(tensors, record)``: a name -> tensor mapping and its
    :class:`zoo.weights.metadata.WeightsMeta` (as :func:`convert_weights`); else None. No pickle
    but what the library's loader reads with ``weights_only=True``. zoo files them in the store."""


@hookspec(firstresult=True)
def push_model(model, dest, force):
    """``zoo push MODEL DEST`` (and ``zoo.push``) where ``DEST`` is ``SCHEME:...`` but not zoo's own
    (a folder, ``hf-hub:``): if the scheme is this plugin's, publish ``model`` (a module from
    ``zoo.load``, its file verified) there and return a :class:`zoo.use.share.Pushed`; else None.
    Pushing what the destination already holds changes nothing and says so; ``force`` replaces
    what the destination holds with other content, where it can."""


@hookspec
def zoo_run_start(run) -> None:
    """The run is assembled (and restored, with ``--resume``: ``run.resumed``); training starts next."""


@hookspec
def zoo_epoch_start(run, epoch: int) -> None:
    """Epoch ``epoch`` (counted from 1) starts, or resumes mid-way at ``run.position.step`` batches."""


@hookspec
def zoo_before_optimizer_step(run, epoch: int, step: int, optimizer: torch.optim.Optimizer) -> None:
    """Optimizer step ``step`` of ``epoch`` is next: every batch of it has been through backward
    (``train.accumulate`` of them), and the gradients in ``run.model``'s parameters are whole and
    unscaled; clipping (``train.grad_clip``) follows. Reading them forces a host sync."""


@hookspec
def zoo_train_step(run, epoch: int, step: int, loss: torch.Tensor) -> None:
    """After optimizer step ``step`` (counted from 1 in the epoch; one per ``train.accumulate``
    batches); ``loss`` is the mean loss of that step's batches as a 0-d tensor on the device. Reading
    it (``.item()``) forces a host sync; with no implementation this hook costs nothing."""


@hookspec
def zoo_train_progress(run, epoch: int, step: int, steps: int, loss: float) -> None:
    """Every ``train.log_every`` batches, at the epoch's last, and where ``train.checkpoint_every`` asks
    for a checkpoint (``run.checkpoint_due(step, steps)``): ``step`` of ``steps`` batches done, ``loss``
    the epoch's mean training loss so far (summed over processes); ``run.position`` is exact here."""


@hookspec
def zoo_evaluation_end(run, epoch: int, split: str, metrics: dict[str, float | torch.Tensor]) -> None:
    """Evaluation on ``split`` after epoch ``epoch`` ended; ``metrics`` maps 'loss' etc. to floats, and
    a metric whose value is not one number (a confusion matrix) to a CPU tensor, which the epoch's
    record leaves out."""


@hookspec
def zoo_epoch_end(run, epoch: int, metrics: dict[str, float]) -> None:
    """Epoch ``epoch`` ended; ``metrics`` is its record (epoch, train_loss, {split}_loss..., seconds),
    already appended to ``run.history``; an implementation may add numbers to it."""


@hookspec
def zoo_checkpoint_saved(run, path: Path, epoch: int, step: int) -> None:
    """A checkpoint of the run after ``step`` batches of epoch ``epoch`` was written to ``path`` (rank 0)."""


@hookspec
def zoo_interrupted(run, epoch: int, step: int) -> None:
    """Ctrl-C stopped the run after ``step`` batches of epoch ``epoch``; it ends with Interrupted next."""


@hookspec
def zoo_train_end(run) -> None:
    """The last epoch ended (or ``run.stop`` was asked for); the weights are saved next. A callback may
    put other weights into ``run.model`` here (the best epoch's) and say which with ``run.choose``."""


@hookspec
def zoo_run_end(run, metrics: dict[str, float], weights: Path | None) -> None:
    """Training finished; ``metrics`` are those of the saved weights (the final epoch's, or the chosen
    one's); ``weights`` is the saved weights file on rank 0 (None on other ranks). zoo's store (which
    sets ``run.label``) and plot plugins hear it first (``tryfirst``), so the run's files are all there
    for callbacks and other plugins."""


@hookspec
def zoo_sweep_end(name: str, folder: Path, runs: list, log) -> None:
    """Every variant of sweep ``name`` was trained into ``folder`` (sweep.json and sweep.csv written);
    ``runs`` are the variants in grid order, as their folders record them (``label``, ``folder``,
    ``history``, ``metrics``: they may have been trained by other worker processes); ``log`` prints.
    Not a run event: plugins hear it, a run's callbacks do not."""


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
    "exporter": "register_exporters",
    "strategy": "register_strategies",
}

# Hooks that add to zoo besides components.
EXTENSIONS = ("register_catalogs", "register_commands", "convert_weights", "import_weights", "push_model")

# The lifecycle hooks, in the order a run meets them: every ``zoo_`` spec above, in the order written.
EVENTS = tuple(name for name, spec in list(globals().items()) if name.startswith("zoo_") and callable(spec))

# The events of one run (those that receive ``run``): what a callback may implement.
RUN_EVENTS = tuple(name for name in EVENTS if "run" in inspect.signature(globals()[name]).parameters)


def arguments(event: str) -> tuple[str, ...]:
    """The arguments ``event`` is called with, in order."""
    return tuple(inspect.signature(globals()[event]).parameters)
