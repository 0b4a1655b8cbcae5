"""zoo's training strategies (``train.strategy``, the protocol in zoo.assembly.strategy), both on
PyTorch's own engine: ``ddp``, DistributedDataParallel, and ``fsdp``, FSDP2's ``fully_shard`` with
checkpoints written shard by shard through torch.distributed.checkpoint."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

import zoo.api as api

STATE = "state.safetensors"  # in an fsdp checkpoint folder: everything but the shards, and which shards
SHARDS = re.compile(r"shards-[0-9a-f]{8}")
SHARD_FILE = re.compile(r"[A-Za-z0-9_.-]{1,200}\.safetensors")


@dataclass
class DDP:
    """DistributedDataParallel: every process holds the whole model and optimizer, and the gradients
    are averaged over the processes in buckets while backward runs. Checkpoints are one file, written
    by rank 0."""

    checkpoint: ClassVar[str] = "checkpoint.safetensors"

    def shard(self, model, context, precision):
        return precision

    def wrap(self, model, device, context):
        if not context.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def no_sync(self, forward):
        module = getattr(forward, "_orig_mod", forward)  # under torch.compile
        return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()

    def state(self, model, optimizer):
        return model.state_dict(), optimizer.state_dict()

    def load_state(self, model, optimizer, model_state, optimizer_state):
        model.load_state_dict(model_state, strict=True)
        optimizer.load_state_dict(optimizer_state)

    def weights(self, model, context):
        tensors = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if not context.active:
            return tensors, ""
        digests = context.gather_object(api.content_digest(tensors))
        if len(set(digests)) != 1:
            raise api.ZooError(f"the {context.world} processes ended with different weights: {digests}")
        how = f"weights identical on all {context.world} processes (sha256 {digests[0][:16]}...)"
        return (tensors if context.is_main else None), how

    def save(self, path, state, fingerprint, context):
        if context.is_main:
            api.write_checkpoint(path, state, fingerprint)

    def load(self, path, fingerprint, like, context):
        return api.read_checkpoint(path, fingerprint)

    def remove(self, path):
        path.unlink(missing_ok=True)


@dataclass
class FSDP:
    """FSDP2: ``fully_shard`` on each block of the model, then on the model, so that each of N processes
    holds 1/N of every parameter, gradient and optimizer state, gathering a block's parameters for its
    forward and backward and reduce-scattering its gradients. ``train.precision`` bf16 (16-mixed)
    becomes FSDP's mixed-precision policy: parameters gathered in bfloat16 (float16), gradients reduced
    in float32. Checkpoints are a folder: one file of shards per process, written in parallel with
    torch.distributed.checkpoint, beside a file of everything else (rank 0's). The weights file is
    gathered onto rank 0 at the end.

    The blocks are what the model's ``zoo_blocks`` attribute names (glob patterns over submodule
    names, e.g. ``("layers.*",)``), else each parameter-holding member of the model's ModuleLists and
    Sequentials, after the member's own blocks."""

    # free a block's gathered parameters after its forward, gathering them again for its backward
    reshard_after_forward: bool = True
    checkpoint: ClassVar[str] = "checkpoint"

    def shard(self, model, context, precision):
        if not context.active:
            return precision
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(precision.device.type, (context.world,))
        policy = MixedPrecisionPolicy(param_dtype=precision.dtype,
                                      reduce_dtype=torch.float32 if precision.dtype else None)
        for name in blocks(model):
            fully_shard(model.get_submodule(name), mesh=mesh, mp_policy=policy,
                        reshard_after_forward=self.reshard_after_forward)
        fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=self.reshard_after_forward)
        return replace(precision, autocasts=False) if precision.dtype else precision

    def wrap(self, model, device, context):
        return model

    @contextlib.contextmanager
    def no_sync(self, forward):
        sharded = hasattr(forward, "set_requires_gradient_sync")
        if sharded:
            forward.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            if sharded:
                forward.set_requires_gradient_sync(True)

    def state(self, model, optimizer):
        from torch.distributed.checkpoint.state_dict import get_state_dict

        return get_state_dict(model, optimizer)

    def load_state(self, model, optimizer, model_state, optimizer_state):
        from torch.distributed.checkpoint.state_dict import set_state_dict

        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state)

    def weights(self, model, context):
        if not context.active:
            return {k: v.detach().cpu() for k, v in model.state_dict().items()}, ""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        tensors = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return (tensors if context.is_main else None), f"weights gathered from {context.world} shards onto rank 0"

    def save(self, path: Path, state, fingerprint, context):
        from torch.distributed.checkpoint import HuggingFaceStorageWriter
        from torch.distributed.checkpoint import save as save_shards
        from torch.distributed.tensor import DTensor

        tensors: dict[str, torch.Tensor] = {}
        skeleton = api.split_state(state, "state", tensors)
        sharded = {k: v for k, v in tensors.items() if isinstance(v, DTensor)}
        plain = {k: v for k, v in tensors.items() if k not in sharded}
        folder = path / context.gather_object(f"shards-{secrets.token_hex(4)}")[0]
        if context.is_main:
            folder.mkdir(parents=True)
        context.barrier()
        if sharded:
            save_shards(sharded, storage_writer=HuggingFaceStorageWriter(str(folder), save_distributed=True))
        if context.is_main:
            files = {f.name: api.file_sha256(f) for f in sorted(folder.iterdir())}
            # written last and atomically: the checkpoint is the shards this file names, complete
            api.write_state(path / STATE, skeleton, plain, fingerprint, shards=folder.name, files=files,
                            sharded=sorted(sharded), processes=context.world)
            for old in path.glob("shards-*"):
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)
        context.barrier()

    def load(self, path: Path, fingerprint, like, context):
        from torch.distributed.checkpoint import HuggingFaceStorageReader
        from torch.distributed.checkpoint import load as load_shards
        from torch.distributed.tensor import DTensor

        metadata, tensors = api.read_checkpoint_state(path / STATE, fingerprint)
        folder, files, keys = metadata.get("shards"), metadata.get("files"), metadata.get("sharded")
        if not (isinstance(folder, str) and SHARDS.fullmatch(folder) and isinstance(files, dict)
                and all(isinstance(n, str) and SHARD_FILE.fullmatch(n) for n in files) and isinstance(keys, list)):
            raise api.ZooError(f"checkpoint {path}: {STATE} does not say which shards it holds; delete it to start "
                               "over")
        folder = path / folder
        present = sorted(f.name for f in folder.iterdir()) if folder.is_dir() else []
        if present != sorted(files):
            raise api.ZooError(f"checkpoint {path}: {folder.name} holds {len(present)} of its {len(files)} shard "
                               "files; delete it to start over")
        for name, digest in files.items():
            if api.file_sha256(folder / name) != digest:
                raise api.ZooError(f"checkpoint {path}: {folder.name}/{name} does not match the digest it was written "
                                   "with; it is corrupt. Delete it to start over")
        if keys:
            own: dict[str, torch.Tensor] = {}
            api.split_state(like, "state", own)
            reader = HuggingFaceStorageReader(str(folder))
            try:
                missing = [k for k in keys if not isinstance(own.get(k), DTensor)]
                stored = reader.read_metadata().state_dict_metadata if missing else {}
                shards = {k: _sharded_like(own, stored[k]) if k in missing else own[k] for k in keys}
                load_shards(shards, storage_reader=reader)
            except Exception as exc:  # DCP's CheckpointException wraps each rank's error
                first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise api.ZooError(f"checkpoint {path}: its shards do not fit this run ({first}); "
                                   "delete it to start over") from None
            tensors.update(shards)
        return api.join_checkpoint_state(metadata, tensors, path)

    def remove(self, path):
        shutil.rmtree(path, ignore_errors=True)


def _sharded_like(own: dict[str, torch.Tensor], stored) -> torch.Tensor:
    """An empty DTensor for a sharded tensor of the checkpoint (``stored``: its DCP metadata) that the
    run's own state has not (yet): a callback's copy of the weights (best-checkpoint). Sharded as FSDP
    shards a parameter: along dim 0 over the model's mesh."""
    from torch.distributed.tensor import DTensor, Shard, empty

    mesh = next(t.device_mesh for t in own.values() if isinstance(t, DTensor))
    return empty(*stored.size, dtype=stored.properties.dtype, device_mesh=mesh, placements=[Shard(0)])


def blocks(model: nn.Module, prefix: str = "") -> list[str]:
    """The names of the submodules :class:`FSDP` shards one by one (see there), inner ones first, as
    ``fully_shard`` needs: a container's member that has blocks of its own (the encoder in a
    ``sequential`` recipe model) is sharded after them."""
    declared = getattr(model, "zoo_blocks", None)
    if declared is not None:
        return [prefix + name for name, _ in model.named_modules() if name and any(_matches(name, p) for p in declared)]
    container = isinstance(model, (nn.ModuleList, nn.Sequential))
    found: list[str] = []
    for name, child in model.named_children():
        found += blocks(child, f"{prefix}{name}.")
        if container and any(p.requires_grad for p in child.parameters()):
            found.append(prefix + name)
    return found


def _matches(name: str, pattern: str) -> bool:
    """Whether a dotted module name matches a glob whose ``*`` stays within one part of the name."""
    parts, wanted = name.split("."), pattern.split(".")
    return len(parts) == len(wanted) and all(map(fnmatchcase, parts, wanted))
