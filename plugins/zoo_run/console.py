"""One line per epoch with its metrics, and where the weights went."""

from zoo.api import RECORD_FACTS, data_wait, hookimpl


@hookimpl
def zoo_epoch_end(run, epoch, metrics):
    scores = [f"{k} {v:.4f}" for k, v in metrics.items() if k not in RECORD_FACTS]
    run.log("  ".join([f"epoch {epoch}/{run.settings.train.epochs}", *scores])
            + f"  ({metrics['seconds']:.1f}s, {metrics['data_wait']:.0%} waiting for data)")


@hookimpl(trylast=True)
def zoo_run_end(run, metrics, weights):
    if weights is not None:
        waited = data_wait(run.history)
        run.log(f"wrote {weights}  " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                + ("" if waited is None else f"  (the loop waited for data {waited:.0%} of the time)"))
