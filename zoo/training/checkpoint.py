"""Training checkpoints as safetensors: tensors by key, everything else as JSON metadata. No pickle.

A checkpoint holds a run's whole state -- model, optimizer, schedule, RNG states, shuffle generator
and position -- so that ``--resume`` reaches the same weights as an uninterrupted run. Like a
weights file it carries a digest of its tensors' bytes, checked before anything is restored, and a
state that does not fit the run (a tensor missing or reshaped, a key this zoo does not know) is an
error naming the checkpoint. The run's strategy writes and reads it (zoo.assembly.strategy): ``ddp``
as one file, through :func:`save` and :func:`load`; ``fsdp`` as one shard per process beside a file of
:func:`write_state` holding everything else."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.training.run import Position, Run
from zoo.weights.format import content_digest, file_content_digest, read_raw, write
from zoo.weights.metadata import MAX_BYTES

FORMAT = "zoo-checkpoint/1"


def split(state: object, prefix: str, tensors: dict[str, torch.Tensor]) -> object:
    """JSON-able skeleton of a nested state, its tensors moved into ``tensors`` under dotted keys."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().to("cpu").clone().contiguous()
        return {"$tensor": prefix}
    if isinstance(state, dict):
        return {"$dict": [[k, split(v, f"{prefix}.{k}", tensors)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        items = [split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)]
        return {"$tuple": items} if isinstance(state, tuple) else items
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise ZooError(f"cannot checkpoint a {type(state).__name__} at {prefix}")


def join(skeleton: object, tensors: dict[str, torch.Tensor]) -> object:
    """The inverse of :func:`split`."""
    if isinstance(skeleton, list):
        return [join(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "$tensor" in skeleton:
            return tensors[skeleton["$tensor"]]
        if "$tuple" in skeleton:
            return tuple(join(v, tensors) for v in skeleton["$tuple"])
        return {k: join(v, tensors) for k, v in skeleton["$dict"]}
    return skeleton


def save(path: Path, state: dict, fingerprint: str) -> None:
    """Write ``state`` (nested dicts of tensors and plain values) atomically, with its tensors' digest."""
    tensors: dict[str, torch.Tensor] = {}
    write_state(path, split(state, "state", tensors), tensors, fingerprint)


def write_state(path: Path, skeleton: object, tensors: dict[str, torch.Tensor], fingerprint: str, **facts) -> None:
    """Write a :func:`split` state atomically: its tensors, and as JSON its skeleton, the recipe's
    ``fingerprint``, the tensors' digest and ``facts`` (JSON values a strategy keeps with it)."""
    meta = {**facts, "format": FORMAT, "fingerprint": fingerprint, "skeleton": skeleton,
            "tensors_sha256": content_digest(tensors)}
    write(path, tensors, json.dumps(meta, sort_keys=True))


def load(path: Path, fingerprint: str) -> dict:
    """Read a checkpoint written for the same recipe (same ``fingerprint``), its tensors verified
    against its digest; else raise ZooError naming it."""
    metadata, tensors = read_state(path, fingerprint)
    return join_state(metadata, tensors, path)


def read_state(path: Path, fingerprint: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The metadata and tensors of a file :func:`write_state` wrote for the same recipe, its tensors
    verified against its digest; else ZooError naming it."""
    tensors, text = read_raw(path, "delete it to start over")
    try:
        metadata = json.loads(text) if len(text) <= MAX_BYTES else None
    except (ValueError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ZooError(f"{path} is not a zoo checkpoint")
    if metadata.get("fingerprint") != fingerprint:
        raise ZooError(
            f"checkpoint {path} was written by a different recipe; resuming would mix two runs. "
            "Run without --resume to start over, or use the recipe it was made with"
        )
    if metadata.get("tensors_sha256") != file_content_digest(path):
        raise ZooError(f"checkpoint {path}: its tensor data does not match the digest it was written with; it is "
                       "corrupt. Delete it to start over")
    return metadata, tensors


def join_state(metadata: dict, tensors: dict[str, torch.Tensor], path: Path) -> dict:
    """The state a checkpoint's skeleton and ``tensors`` make; ZooError naming ``path`` if malformed."""
    try:
        return join(metadata["skeleton"], tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ZooError(f"checkpoint {path}: its state is malformed ({type(exc).__name__}: {exc})") from None


def snapshot(run: Run, rng: list[torch.Tensor]) -> dict:
    """The run's state; ``rng`` holds every process's CPU RNG state."""
    position = run.position
    model, optimizer = run.strategy.state(run.model, run.optimizer)
    return {
        "model": model,
        "optimizer": optimizer,
        "schedule": run.schedule.state_dict() if run.schedule is not None else None,
        "rng": rng,
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": run.generator.get_state(),
        "position": {
            "epoch": position.epoch, "step": position.step, "shuffle_state": position.shuffle_state,
            "loss_sum": position.loss_sum, "seen": position.seen, "history": position.history,
            "stop": position.stop,
        },
        "scaler": run.precision.state_dict(),
        "callbacks": [callback.state() for callback in run.callbacks],
    }


def restore(run: Run, state: dict, path: Path) -> None:
    """Put a snapshot back into the run: weights, optimizer, schedule, RNG states, position and the
    callbacks' states; ZooError naming the checkpoint ``path`` when it does not fit the run."""
    try:
        _restore(run, state)
    except ZooError as exc:
        raise ZooError(f"checkpoint {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ZooError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {first}); "
                       "delete it to start over") from None


def _restore(run: Run, state: dict) -> None:
    context = run.context
    if len(state["rng"]) != context.world:
        raise ZooError(f"written by {len(state['rng'])} process(es), this run has "
                       f"{context.world}; resume with the same number")
    run.strategy.load_state(run.model, run.optimizer, state["model"], state["optimizer"])
    if run.schedule is not None and state["schedule"] is not None:
        run.schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"][context.rank])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    run.generator.set_state(state["shuffle"])
    run.position = Position(**state["position"])
    run.precision.load_state_dict(state.get("scaler"))
    for callback, kept in zip(run.callbacks, state.get("callbacks", [])):
        callback.restore(kept)


def save_run(run: Run) -> None:
    """Checkpoint the run, as its strategy writes checkpoints (every process calls this)."""
    rng = run.context.gather(torch.get_rng_state())
    run.strategy.save(run.checkpoint, snapshot(run, rng), fingerprint(run), run.context)
    if run.is_main:
        run.emit("zoo_checkpoint_saved", path=run.checkpoint, epoch=run.position.epoch + 1, step=run.position.step)


def resume(run: Run) -> None:
    """Restore the run from its folder's checkpoint, or say there is none."""
    if not run.checkpoint.exists():
        raise ZooError(f"nothing to resume: no checkpoint in {run.folder}; run without --resume")
    like = snapshot(run, run.context.gather(torch.get_rng_state()))
    restore(run, run.strategy.load(run.checkpoint, fingerprint(run), like, run.context), run.checkpoint)
    run.resumed = True


def fingerprint(run: Run) -> str:
    """sha256 of the resolved recipe: a checkpoint resumes only the run that wrote it."""
    data = json.dumps(run.settings.recipe.data, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()
