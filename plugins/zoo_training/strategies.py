"""zoo's training strategies (``train.strategy``, the protocol in zoo.assembly.strategy), both on
PyTorch's own engine: ``ddp``, DistributedDataParallel, and ``fsdp``, FSDP2's ``fully_shard``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

import torch
from torch import nn

import zoo.api as api


@dataclass
class DDP:
    """DistributedDataParallel: every process holds the whole model and optimizer, and the gradients
    are averaged over the processes in buckets while backward runs."""

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


@dataclass
class FSDP:
    """FSDP2: ``fully_shard`` on each block of the model, then on the model, so that each of N processes
    holds 1/N of every parameter, gradient and optimizer state, gathering a block's parameters for its
    forward and backward and reduce-scattering its gradients. ``train.precision`` bf16 (16-mixed)
    becomes FSDP's mixed-precision policy: parameters gathered in bfloat16 (float16), gradients reduced
    in float32. Its state is sharded (DTensors): each process's checkpoint file holds its shards. The
    weights file is gathered onto rank 0 at the end.

    The blocks are what the model's ``zoo_blocks`` attribute names (glob patterns over submodule
    names, e.g. ``("layers.*",)``), else each parameter-holding member of the model's ModuleLists and
    Sequentials, after the member's own blocks."""

    # free a block's gathered parameters after its forward, gathering them again for its backward
    reshard_after_forward: bool = True

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
