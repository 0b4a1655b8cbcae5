"""One line per epoch with its metrics, and where the weights went."""

from zoo.api import hookimpl


@hookimpl
def zoo_epoch_end(run, epoch, metrics):
    scores = [f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("epoch", "seconds")]
    run.log("  ".join([f"epoch {epoch}/{run.settings.train.epochs}", *scores]) + f"  ({metrics['seconds']:.1f}s)")


@hookimpl(trylast=True)
def zoo_run_end(run, metrics, weights):
    if weights is not None:
        run.log(f"wrote {weights}  " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
