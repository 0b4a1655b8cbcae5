"""This process's place in a torchrun job (rank, world, device), and joining its process group; a
no-op for one process. How the processes share the training is the strategy's (zoo.assembly.strategy)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from zoo.errors import ZooError
from zoo.launch import launched_by_torchrun


@dataclass(frozen=True)
class Context:
    """This process's place in the run: rank, number of processes, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """This rank's share of ``order``: every ``world``-th index from ``rank``. With ``pad``, the
        order is first extended by wrapping around so that every rank gets the same count (as
        DistributedSampler does), which keeps the ranks' steps, and so their collectives, in step."""
        if not self.active:
            return order
        if pad and len(order) % self.world:
            extra = self.world - len(order) % self.world
            order = torch.cat([order, order.repeat(-(-extra // len(order)))[:extra]])
        return order[self.rank :: self.world]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (in place, returned)."""
        if self.active:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``tensor`` from every rank, in rank order (same shape on every rank)."""
        if not self.active:
            return [tensor]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor)
        return parts

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def gather_object(self, value: object) -> list[object]:
        if not self.active:
            return [value]
        parts: list[object] = [None] * self.world
        dist.all_gather_object(parts, value)
        return parts


def from_environment(backend: str = "auto", device: str = "auto") -> Context:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...);
    one process without it. ``backend`` 'auto' picks nccl for CUDA, else gloo."""
    if not launched_by_torchrun():
        return Context()
    world = int(os.environ["WORLD_SIZE"])
    if not dist.is_available():
        raise ZooError("this torch build has no torch.distributed; run without torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank, world, local_rank, backend)


def device_for(context: Context, device: str) -> str:
    """Each process's device: its own GPU (cuda:LOCAL_RANK) when training on CUDA under torchrun."""
    if context.active and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        return f"cuda:{context.local_rank}"
    return device


def close(context: Context) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()


def restarts() -> int:
    """How many times torchrun has restarted this job's processes (``--max-restarts``): 0 on the first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
