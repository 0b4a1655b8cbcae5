"""An atomic checkpoint after every epoch, every ``train.checkpoint_every`` optimizer steps and on
Ctrl-C, removed when the run completes (``--resume``, and torchrun's restarts, read it). At an epoch's
end it is taken last, so it holds what every other hook and callback did in that epoch."""

import zoo.api as api  # api.save_checkpoint imports torch: looked up at call time, not at import
from zoo.api import hookimpl


@hookimpl(trylast=True)
def zoo_epoch_end(run):
    api.save_checkpoint(run)  # every process: the RNG states are gathered


@hookimpl(trylast=True)
def zoo_train_progress(run, step, steps):
    if run.checkpoint_due(step, steps):
        api.save_checkpoint(run)


@hookimpl
def zoo_interrupted(run):
    api.save_checkpoint(run)


@hookimpl(trylast=True)
def zoo_run_end(run, weights):
    if weights is not None:  # after the other plugins filed the weights
        run.strategy.remove(run.checkpoint)
