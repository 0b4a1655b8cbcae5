"""The training loop: seeded shuffles, whole-tensor batches, resumable at any step."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.assembly.distributed import Context
from zoo.assembly.precision import Precision
from zoo.assembly.transforms import Pipeline, batch_generator
from zoo.errors import ZooError
from zoo.training import checkpoint
from zoo.training.run import Position, Run


class StopRequest:
    """During training, Ctrl-C sets a flag that the loop honours after a complete step, so the saved
    state is consistent; a second Ctrl-C stops at once, saving nothing (the last epoch's checkpoint stays)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise ForcedStop
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


class ForcedStop(KeyboardInterrupt):
    """A second Ctrl-C: stop now, without saving."""


class Interrupted(Exception):
    """Training stopped on Ctrl-C after the position was saved."""

    def __init__(self, position: Position):
        super().__init__(f"interrupted at epoch {position.epoch + 1}, batch {position.step}")
        self.position = position


def fit(run: Run, forward: Callable[[Tensor], Tensor] | None = None) -> list[dict]:
    """Train ``run.model`` in place for ``train.epochs`` epochs from ``run.position``; return one record
    of metrics per epoch (``run.history``).

    Evaluation metrics are recorded as ``{eval_split}_loss`` etc. ``run.generator`` drives the
    shuffles; ``forward`` replaces the model for the forward pass (a compiled or
    DistributedDataParallel module). Under torchrun, ``run.context`` shards each epoch's permutation
    by rank and sums losses and metrics over ranks. The lifecycle events go to ``run.emit``; on
    Ctrl-C :class:`Interrupted` is raised after ``zoo_interrupted``.
    """
    parts, data, train = run.parts, run.settings.data, run.settings.train
    position, generator, context = run.position, run.generator, run.context
    forward = forward or parts.model
    eval_name = data.eval_split or "eval"
    loading = {"workers": data.workers, "prefetch": data.prefetch, "seed": generator.initial_seed()}
    batches = Batches(parts.train_data, data.batch_size, parts.device, **loading)
    eval_batches = None if parts.eval_data is None else Batches(parts.eval_data, data.eval_batch_size, parts.device,
                                                                **loading)
    if run.resumed and context.active:
        _settle(run, forward, batches)
    with StopRequest() as stop:
        while position.epoch < train.epochs and position.stop is None:
            if position.shuffle_state is None:
                position.shuffle_state = generator.get_state()
            else:
                generator.set_state(position.shuffle_state)
            order = context.shard(shuffled(parts.train_data, generator) if data.shuffle
                                  else torch.arange(len(parts.train_data)))
            started = time.perf_counter()
            batches.waited = 0.0
            epoch = position.epoch + 1
            try:
                parts.model.train()
                run.emit("zoo_epoch_start", epoch=epoch)
                _epoch(run, forward, batches, order, stop, generator.initial_seed())
                waited = batches.waited
                record = {"epoch": epoch, "train_loss": position.loss_sum / max(1, position.seen)}
                if eval_batches is not None:
                    scores = evaluate(parts.model, parts.eval_data, parts.loss, parts.metrics, context,
                                      eval_batches, parts.eval_transform, parts.precision)
                    run.emit("zoo_evaluation_end", epoch=epoch, split=eval_name, metrics=scores)
                    record.update({f"{eval_name}_{k}": v for k, v in scores.items() if isinstance(v, float)})
                record["seconds"] = round(time.perf_counter() - started, 3)
                record["data_wait"] = round(waited / max(record["seconds"], 1e-9), 3)
                position.history.append(record)
                position.epoch, position.step, position.loss_sum, position.seen = epoch, 0, 0.0, 0
                position.shuffle_state = None
                run.emit("zoo_epoch_end", epoch=epoch, metrics=record)
                checkpoint.save(run)  # after every hook: it holds what they did in this epoch
                if _stop_agreed(stop, context, parts.device):
                    raise KeyboardInterrupt
            except ForcedStop:
                raise
            except KeyboardInterrupt:
                checkpoint.save(run)
                run.emit("zoo_interrupted", epoch=position.epoch + 1, step=position.step)
                raise Interrupted(position) from None
    return position.history


def shuffled(data: Dataset, generator: torch.Generator) -> Tensor:
    """An epoch's order of ``data``: the dataset's own (a sharded dataset shuffles shards, then samples
    within a window of shards, so reads stay local), else a permutation of all its samples."""
    if hasattr(data, "order"):
        return data.order(generator)
    return torch.randperm(len(data), generator=generator)


def _settle(run: Run, forward, batches: Batches) -> None:
    """Before a resumed run's first step under torchrun: one forward and backward in eval mode (no
    dropout, no running statistics updated, no random draw), its gradients discarded. DDP sums the
    gradients of its first backward in buckets laid out by parameter order, and rebuilds them in the
    order gradients became ready for every later one; with more than two processes the two layouts
    add the same numbers in another order (the last bits differ), so without this the resumed run's
    first step would not be the uninterrupted run's."""
    model, parts = run.parts.model, run.parts
    model.eval()
    try:
        x, y = next(batches(torch.arange(min(len(parts.train_data), batches.batch_size))))
        with parts.precision.autocast():
            parts.loss(forward(x), y).backward()
    finally:
        model.train()
        parts.optimizer.zero_grad(set_to_none=True)


def _stop_agreed(stop: StopRequest, context: Context, device: torch.device) -> bool:
    """Whether any rank was asked to stop (all ranks must call this at the same point)."""
    if not context.active:
        return stop.requested
    return context.sum(torch.tensor([float(stop.requested)], device=device)).item() > 0


def _epoch(run: Run, forward, batches: Batches, order: Tensor, stop: StopRequest, seed: int) -> None:
    """One epoch from ``run.position.step``. With ``train.accumulate`` = K the optimizer steps after
    every K batches (and the epoch's last), each batch's mean loss weighted by its share of the
    group's samples: the gradient of one batch K times as large. A run stops (Ctrl-C) and syncs only
    between optimizer steps, so a checkpoint never holds half-accumulated gradients; with
    ``train.checkpoint_every`` it also syncs after every that many optimizer steps and saves a
    checkpoint there."""
    parts, train, position, context = run.parts, run.settings.train, run.position, run.context
    optimizer, precision, accumulate = parts.optimizer, parts.precision, train.accumulate
    steps = batches.steps(len(order))
    epoch = position.epoch + 1
    each_step = run.implemented("zoo_train_step")
    before_step = run.implemented("zoo_before_optimizer_step")
    loss_sum = torch.zeros((), device=batches.device)  # since the last host sync
    step_loss = torch.zeros((), device=batches.device)  # of the current optimizer step
    seen = 0
    parameters = [p for p in parts.model.parameters() if p.requires_grad]
    group = accumulate * batches.batch_size  # samples per optimizer step
    sync_due = False
    optimizer.zero_grad(set_to_none=True)
    try:
        draws = (seed, epoch)  # a dataset that augments per sample draws from these and the sample's index
        for step, (x, y) in enumerate(batches(order, position.step, draws), start=position.step + 1):
            if parts.transform is not None:
                x, y = parts.transform(x, y, batch_generator(batches.device, seed, epoch, step, context.rank))
            boundary = step % accumulate == 0 or step == steps
            first = (step - 1) // accumulate * group
            share = len(y) / (min(len(order), first + group) - first)  # of the optimizer step's samples
            with contextlib.nullcontext() if boundary else run.strategy.no_sync(forward):
                with precision.autocast():
                    loss = parts.loss(forward(x), y)
                precision.backward(loss if accumulate == 1 else loss * share)
            if each_step:
                step_loss.add_(loss.detach(), alpha=share)
            if boundary:
                number = (step - 1) // accumulate + 1
                announce = (lambda: run.emit("zoo_before_optimizer_step", epoch=epoch, step=number,
                                             optimizer=optimizer)) if before_step else (lambda: None)
                precision.step(optimizer, parameters, train.grad_clip, announce)
                optimizer.zero_grad(set_to_none=True)
                if parts.schedule is not None:
                    parts.schedule.step()
                if each_step:
                    run.emit("zoo_train_step", epoch=epoch, step=number, loss=step_loss.clone())
                step_loss.zero_()
            loss_sum.add_(loss.detach(), alpha=len(y))
            seen += len(y)
            position.step = step
            sync_due = sync_due or step % train.log_every == 0 or step == steps or run.checkpoint_due(step, steps)
            if not boundary:
                continue
            if sync_due:
                # the one host sync, every log_every steps: losses summed over ranks, and whether to stop
                sync_due = False
                totals = context.sum(torch.stack([loss_sum, loss_sum.new_tensor(float(seen)),
                                                  loss_sum.new_tensor(float(stop.requested))])).tolist()
                position.loss_sum += totals[0]
                position.seen += int(totals[1])
                loss_sum.zero_()
                seen = 0
                run.emit("zoo_train_progress", epoch=epoch, step=step, steps=steps,
                         loss=position.loss_sum / max(1, position.seen))
                if run.checkpoint_due(step, steps):
                    checkpoint.save(run)
                if context.active and totals[2]:
                    raise KeyboardInterrupt
            if not context.active:
                stop.check()
    finally:
        if seen:
            position.loss_sum += loss_sum.item()
            position.seen += seen


class Batches:
    """Batches of a dataset in a given order. A dataset with ``tensors()`` is gathered into buffers
    reused from batch to batch (a batch is valid until the next one); others go through one DataLoader,
    with ``workers`` persistent worker processes (seeded by ``seed``) each ``prefetch`` batches ahead,
    and pinned memory for CUDA; the DataLoader hands whole batches to the workers in turn, so a batch
    holds the same samples whatever the number of workers. A dataset with ``sample(index, seed)``
    (one that augments each sample) gets a seed made of the pass's ``draws`` and the sample's index,
    so its random choices do not depend on which worker or which run reads it. ``waited`` adds up
    the seconds the caller waited for batches."""

    def __init__(self, data: Dataset, batch_size: int, device: torch.device, *, workers: int = 0, prefetch: int = 2,
                 seed: int = 0):
        self.data, self.batch_size, self.device = data, batch_size, device
        self.tensors = None
        self.waited = 0.0
        if hasattr(data, "tensors"):
            inputs, targets = (t.to(device) for t in data.tensors())
            self.tensors = inputs, targets
            self.divide_by = getattr(data, "divide_by", None)
            rows = min(batch_size, len(inputs))
            self.raw = inputs.new_empty((rows, *inputs.shape[1:]))
            self.x = self.raw.new_empty(self.raw.shape, dtype=torch.float32) if self.divide_by else None
            self.y = targets.new_empty((rows, *targets.shape[1:]))
            return
        self.order = _Order(hasattr(data, "sample"))
        self.loader = DataLoader(_Drawn(data) if self.order.drawn else data, batch_size=batch_size, sampler=self.order,
                                 num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                 prefetch_factor=prefetch if workers else None,
                                 generator=torch.Generator().manual_seed(seed))
        if workers:  # fork the workers now, before the DataLoaders' threads exist: a fork while another
            iter(self.loader)  # thread starts or ends can hang the child (CPython 3.11, seen under torchrun)

    def steps(self, count: int) -> int:
        return math.ceil(count / self.batch_size)

    def __call__(self, order: Tensor, skip: int = 0,
                 draws: tuple[int, int] = (0, 0)) -> Iterator[tuple[Tensor, Tensor]]:
        started = time.perf_counter()
        for batch in self._batches(order, skip, draws):
            self.waited += time.perf_counter() - started
            yield batch
            started = time.perf_counter()

    def _batches(self, order: Tensor, skip: int, draws: tuple[int, int]) -> Iterator[tuple[Tensor, Tensor]]:
        start = skip * self.batch_size
        if self.tensors is None:
            self.order.start(order[start:].tolist(), draws)
            try:
                for x, y in self.loader:
                    yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            except ZooError as exc:  # from a worker process: its message holds the worker's traceback
                raise ZooError(str(exc).strip().splitlines()[-1].removeprefix(f"{ZooError.__module__}.ZooError: ")) \
                    from None
            return
        inputs, targets = self.tensors
        order = order.to(self.device)
        for begin in range(start, len(order), self.batch_size):
            index = order[begin : begin + self.batch_size]
            rows = len(index)
            x = torch.index_select(inputs, 0, index, out=self.raw[:rows])
            if self.divide_by:
                x = torch.div(x, self.divide_by, out=self.x[:rows])
            yield x, torch.index_select(targets, 0, index, out=self.y[:rows])


class _Order(Sampler):
    """The sample indices of the current pass (with ``drawn``, (index, seed) pairs), set before each
    one: a DataLoader keeps its sampler (and its persistent workers) from pass to pass."""

    def __init__(self, drawn: bool):
        self.drawn = drawn
        self.indices: list[int] = []
        self.draws = (0, 0)

    def start(self, indices: list[int], draws: tuple[int, int]) -> None:
        self.indices, self.draws = indices, draws

    def __iter__(self) -> Iterator:
        if not self.drawn:
            return iter(self.indices)
        return ((index, sample_seed(self.draws, index)) for index in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def sample_seed(draws: tuple[int, int], index: int) -> int:
    """The seed of one sample's random choices in one pass: a function of the run's seed, the epoch
    and the sample's index only."""
    seed, epoch = draws
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % (1 << 63)


class _Drawn(Dataset):
    """A dataset with ``sample(index, seed)`` indexed by the (index, seed) pairs of :class:`_Order`."""

    def __init__(self, data: Dataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Tensor, Tensor]:
        return self.data.sample(*item)


class Metric(Protocol):
    """A streaming evaluation metric (see zoo.hookspecs.register_metrics); torchmetrics metrics are."""

    def update(self, output: Tensor, target: Tensor) -> None: ...

    def compute(self) -> Tensor | float: ...

    def reset(self) -> None: ...


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, loss: Callable, metrics: Mapping[str, Metric] | None = None,
             context: Context = Context(), batches: Batches | None = None, transform: Pipeline | None = None,
             precision: Precision | None = None, batch_size: int = 1000) -> dict:
    """Mean loss over samples and each metric's value (a float, or a tensor for a metric such as a
    confusion matrix), with the model in eval mode, on the device its parameters are on; under
    torchrun each rank scores its share (in as many forward passes as every other rank: a sharded
    model's forward pass is a collective), the loss sums are combined and each metric combines its
    own states. ``batches`` reuses a :class:`Batches` of ``data`` (and its worker processes), else
    batches of ``batch_size``; ``transform`` changes each batch first (its augmentations are off);
    ``precision`` autocasts the forward passes."""
    device = next(model.parameters()).device
    metrics = metrics or {}
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    samples = torch.zeros((), device=device)
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    for metric in metrics.values():
        metric.reset()
    try:
        batches = batches or Batches(data, batch_size, device)
        own = len(context.shard(torch.arange(len(data)), pad=False))  # this rank's samples; the rest repeat others
        done = 0
        for x, y in batches(context.shard(torch.arange(len(data)))):  # every rank as many forward passes
            if transform is not None:
                x, y = transform(x, y, None)
            with autocast:
                out = model(x)
            keep = min(len(y), own - done)
            done += len(y)
            if keep < len(y):
                out, y = out[:keep], y[:keep]
            if keep == 0:
                continue
            with autocast:
                total += loss(out, y) * len(y)
            samples += len(y)
            for metric in metrics.values():
                metric.update(out, y)
    finally:
        model.train(was_training)
    total, samples = context.sum(torch.stack([total, samples])).tolist()
    scores = {"loss": total / max(1.0, samples)}
    for name, metric in metrics.items():
        value = torch.as_tensor(metric.compute())
        scores[name] = float(value) if value.numel() == 1 else value.cpu()
    return scores
