"""How one model trains over the processes of a torchrun job (``train.strategy``), as :class:`Precision`
says how its numbers are computed. The trainer asks its strategy at each point where data-parallel
training differs: before the optimizer is built (a sharding strategy shards the model there), for the
module the forward passes go through, for a backward that must not sync its gradients (accumulation),
for the model's and optimizer's state (which zoo's one checkpoint manager writes, with
torch.distributed.checkpoint, whatever the strategy) and for the whole weights at the end. zoo's are
``ddp`` and ``fsdp`` (the zoo_training plugin); a plugin adds another with ``register_strategies``.
With one process every strategy trains the model as it is. A strategy that keeps state of its own
has ``state_dict()`` / ``load_state_dict(state)``, and checkpoints keep it under the key ``strategy``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from torch import Tensor, nn

from zoo.assembly.precision import Precision

if TYPE_CHECKING:
    import torch

    from zoo.assembly.distributed import Context


class Strategy(Protocol):
    """A way of training one model data-parallel. Every method is called on every process, at the
    same point, so a method may run collectives."""

    def shard(self, model: nn.Module, context: Context, precision: Precision) -> Precision:
        """Prepare ``model`` in place, before its optimizer is built; return the precision the
        forward passes run under (a strategy that casts the parameters itself turns autocast off)."""

    def wrap(self, model: nn.Module, device: torch.device, context: Context) -> nn.Module:
        """The module each training forward pass goes through."""

    def no_sync(self, forward: nn.Module) -> contextlib.AbstractContextManager:
        """A context whose backward passes add to this process's gradients without syncing them."""

    def state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """The model's and the optimizer's state as checkpoints keep them: nested dicts and lists of
        tensors (DTensors for sharded ones) and JSON values."""

    def load_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
                   optimizer_state: dict) -> None:
        """Put a :meth:`state` back."""

    def weights(self, model: nn.Module, context: Context) -> tuple[dict[str, Tensor] | None, str]:
        """The whole model's weights on rank 0 (None elsewhere), and a line saying how they were
        obtained (empty for one process)."""
