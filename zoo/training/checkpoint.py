"""The one checkpoint manager, for every training strategy, in the shape of torchtitan's: a run is a
set of stateful parts under stable keys -- model and optimizer (as the strategy holds them), schedule,
precision, RNG states, the data position, the strategy's and the dataset's own state when they keep
one, and each callback's under its ``state_key`` -- written with ``torch.distributed.checkpoint``.

A checkpoint is the folder ``checkpoint/`` of the run folder: ``shards-XXXXXXXX/``, the tensors as
safetensors files written by DCP (one per process: its shards of sharded tensors and its share of
the replicated ones; no pickle anywhere), and ``state.json``, written last and atomically, holding
everything that is not a tensor, the recipe's fingerprint and each shard file's sha256. An
interrupted save leaves the previous checkpoint whole; a resume verifies every file first, and a
state that does not fit the run is an error naming the checkpoint. Saving and resuming are the
core's: no plugin can switch them off, and no strategy writes files of its own."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from zoo.errors import ZooError
from zoo.files import atomic_write_bytes, file_sha256
from zoo.training.run import Position, Run
from zoo.weights.metadata import MAX_BYTES

FORMAT = "zoo-checkpoint/2"
STATE = "state.json"  # in the checkpoint folder: everything but the tensors, and which files hold them
SHARDS = "shards-"  # + 8 hex digits: the folder of one save's tensor files
MAX_FILES = 100_000  # tensor files a state.json may name


@runtime_checkable
class Stateful(Protocol):
    """What a checkpoint keeps: torch's and torchtitan's protocol."""

    def state_dict(self) -> object: ...

    def load_state_dict(self, state: object) -> None: ...


@dataclass(frozen=True)
class Part:
    """A stateful part made of two functions."""

    state_dict: Callable[[], object]
    load_state_dict: Callable[[object], None]


def stateful(run: Run) -> dict[str, Stateful]:
    """The run's parts a checkpoint keeps besides the model and optimizer, by stable key: a callback's
    key is its ``state_key`` (its component name, with its parameters when two share one), not its
    place in the recipe's list."""
    context = run.context

    def rng() -> dict:
        return {"cpu": context.gather(torch.get_rng_state()),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def set_rng(state: dict) -> None:
        if len(state["cpu"]) != context.world:
            raise ZooError(f"written by {len(state['cpu'])} process(es), this run has {context.world}; resume with "
                           "the same number")
        torch.set_rng_state(state["cpu"][context.rank])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def set_position(state: dict) -> None:
        run.position = Position(**state)

    parts: dict[str, Stateful] = {
        "rng": Part(rng, set_rng),
        "shuffle": Part(run.generator.get_state, run.generator.set_state),
        "position": Part(lambda: asdict(run.position), set_position),
        "precision": run.precision,
    }
    if isinstance(run.schedule, Stateful):
        parts["schedule"] = run.schedule
    for name, owner in (("strategy", run.strategy), ("data", run.parts.train_data)):
        if isinstance(owner, Stateful):
            parts[name] = owner
    for callback in run.callbacks:
        if isinstance(callback.target, Stateful):
            parts[f"callback.{callback.state_key}"] = callback.target
    return parts


def snapshot(run: Run) -> dict:
    """The run's whole state (every process computes it: the strategy's state and the RNG states may
    be collectives)."""
    model, optimizer = run.strategy.state(run.model, run.optimizer)
    return {"model": model, "optimizer": optimizer, **{k: p.state_dict() for k, p in stateful(run).items()}}


def save(run: Run) -> None:
    """Checkpoint the run into its folder's ``checkpoint/`` (every process calls this)."""
    from torch.distributed.checkpoint import HuggingFaceStorageWriter
    from torch.distributed.checkpoint import save as save_tensors

    context, path = run.context, run.checkpoint
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split(snapshot(run), "state", tensors)
    folder = path / context.gather_object(f"{SHARDS}{secrets.token_hex(4)}")[0]
    if context.is_main:
        folder.mkdir(parents=True)
    context.barrier()
    with _quiet_dcp():
        save_tensors(tensors, storage_writer=HuggingFaceStorageWriter(str(folder), save_distributed=True),
                     no_dist=not context.active)
    if context.is_main:
        files = {f.name: file_sha256(f) for f in sorted(folder.iterdir())}
        record = {"format": FORMAT, "fingerprint": fingerprint(run), "skeleton": skeleton, "shards": folder.name,
                  "files": files, "processes": context.world}
        atomic_write_bytes(path / STATE, json.dumps(record, sort_keys=True).encode())  # the save is complete here
        for old in path.glob(f"{SHARDS}*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        run.emit("zoo_checkpoint_saved", path=path, epoch=run.position.epoch + 1, step=run.position.step)
    context.barrier()


def resume(run: Run) -> None:
    """Restore the run from its folder's checkpoint, or say there is none."""
    path = run.checkpoint
    if not (path / STATE).is_file():
        old = [name for name in ("checkpoint.safetensors", "checkpoint/state.safetensors") if (run.folder / name).exists()]
        raise ZooError(f"{run.folder / old[0]}: a checkpoint of an earlier zoo, which this one does not read; run "
                       "without --resume to start over" if old else
                       f"nothing to resume: no checkpoint in {run.folder}; run without --resume")
    state = read(path, fingerprint(run), like=snapshot(run), active=run.context.active)
    try:
        _restore(run, state)
    except ZooError as exc:
        raise ZooError(f"checkpoint {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise ZooError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {first}); "
                       "delete it to start over") from None
    run.resumed = True


def _restore(run: Run, state: dict) -> None:
    parts = stateful(run)
    unknown = sorted(state.keys() - parts.keys() - {"model", "optimizer"})
    missing = sorted(parts.keys() - state.keys())
    if unknown or missing:
        raise ZooError(f"its parts ({', '.join(unknown)}) are not this run's" if unknown else
                       f"it holds no state for {', '.join(missing)}")
    parts["rng"].load_state_dict(state["rng"])  # first: it checks the number of processes
    run.strategy.load_state(run.model, run.optimizer, state["model"], state["optimizer"])
    for key, part in parts.items():
        if key != "rng":
            part.load_state_dict(state[key])


def read(path: Path, fingerprint: str, like: dict, active: bool) -> dict:
    """The state of the checkpoint folder ``path``, written for the recipe of ``fingerprint``, every
    file verified against its digest; tensors are read into the shapes and shards of ``like`` (the
    run's own state), and a tensor ``like`` lacks (a callback's copy of the weights, an optimizer
    that has not stepped yet) as the checkpoint stored it."""
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint import load as load_tensors
    from torch.distributed.checkpoint.api import CheckpointException

    record = _record(path, fingerprint)
    folder = path / record["shards"]
    for name, digest in record["files"].items():
        if file_sha256(folder / name) != digest:
            raise ZooError(f"checkpoint {path}: {folder.name}/{name} does not match the digest it was written with; "
                           "it is corrupt. Delete it to start over")
    own: dict[str, torch.Tensor] = {}
    split(like, "state", own)
    reader = HuggingFaceStorageReader(str(folder))
    try:
        with _quiet_dcp():
            stored = reader.read_metadata().state_dict_metadata
            tensors = {key: _like(own, key, meta) for key, meta in stored.items()}
            load_tensors(tensors, storage_reader=reader, no_dist=not active)
    except (Exception, CheckpointException) as exc:  # (a BaseException) wraps each rank's error
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = (lines[-1] if isinstance(exc, CheckpointException) else lines[0]) if lines else type(exc).__name__
        raise ZooError(f"checkpoint {path}: its tensors do not fit this run ({cause}); delete it to start over") from None
    try:
        return join(record["skeleton"], tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ZooError(f"checkpoint {path}: its state is malformed ({type(exc).__name__}: {exc})") from None


def _record(path: Path, fingerprint: str) -> dict:
    """``state.json`` of a checkpoint folder, checked: its format, its recipe, the files it names."""
    try:
        text = (path / STATE).read_bytes()
        record = json.loads(text) if len(text) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ZooError(f"{path / STATE} is not a zoo checkpoint; delete it to start over")
    if record.get("fingerprint") != fingerprint:
        raise ZooError(f"checkpoint {path} was written by a different recipe; resuming would mix two runs. "
                       "Run without --resume to start over, or use the recipe it was made with")
    shards, files = record.get("shards"), record.get("files")
    if not (isinstance(shards, str) and shards.startswith(SHARDS) and len(shards) == len(SHARDS) + 8
            and all(c in "0123456789abcdef" for c in shards[len(SHARDS):]) and isinstance(files, dict)
            and len(files) <= MAX_FILES and all(_file_name(n) for n in files)):
        raise ZooError(f"checkpoint {path}: {STATE} does not say which files hold its tensors; delete it to start "
                       "over")
    folder = path / shards
    present = sorted(f.name for f in folder.iterdir()) if folder.is_dir() else []
    if present != sorted(files):
        raise ZooError(f"checkpoint {path}: {shards} holds {len(present)} of its {len(files)} tensor files; delete it "
                       "to start over")
    return record


def _file_name(name: object) -> bool:
    """Whether a name from state.json is a plain safetensors file name (never a path)."""
    return (isinstance(name, str) and name.endswith(".safetensors") and 0 < len(name) <= 200
            and all(c.isalnum() or c in "_.-" for c in name) and not name.startswith("."))


def _like(own: dict[str, torch.Tensor], key: str, stored) -> torch.Tensor:
    """The tensor DCP reads the stored tensor ``key`` into: the run's own (with its shards), else an
    empty one as it was stored, sharded as FSDP shards a parameter (along dim 0 over the model's
    mesh) when it was written in several pieces."""
    if key in own:
        return own[key]
    if len(stored.chunks) > 1:
        from torch.distributed.tensor import Shard, empty

        mesh = next((t.device_mesh for t in own.values() if _sharded(t)), None)
        if mesh is not None:
            return empty(*stored.size, dtype=stored.properties.dtype, device_mesh=mesh, placements=[Shard(0)])
    return torch.empty(stored.size, dtype=stored.properties.dtype)


def remove(run: Run) -> None:
    """Delete the run's checkpoint (it completed)."""
    if run.is_main:
        shutil.rmtree(run.checkpoint, ignore_errors=True)


def fingerprint(run: Run) -> str:
    """sha256 of the resolved recipe: a checkpoint resumes only the run that wrote it."""
    data = json.dumps(run.settings.recipe.data, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def split(state: object, prefix: str, tensors: dict[str, torch.Tensor]) -> object:
    """JSON-able skeleton of a nested state, its tensors moved into ``tensors`` under dotted keys."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach() if _sharded(state) else state.detach().to("cpu").clone().contiguous()
        return {"$tensor": prefix}
    if isinstance(state, dict):
        return {"$dict": [[k, split(v, f"{prefix}.{k}", tensors)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        items = [split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)]
        return {"$tuple": items} if isinstance(state, tuple) else items
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise ZooError(f"cannot checkpoint a {type(state).__name__} at {prefix}")


def _sharded(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


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


class _quiet_dcp(warnings.catch_warnings):
    """DCP warns that it runs in one process when asked to (no_dist); that is zoo's intent."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message=r"torch\.distributed is disabled")
