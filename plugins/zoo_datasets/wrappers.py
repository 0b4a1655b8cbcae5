"""Datasets made from other datasets: a subset, a random split, a concatenation, a transformed copy.

zoo hands the split it builds (``data.train_split`` / ``data.eval_split``) to every dataset node
that does not set its own, wrapped ones included; ``random-split`` uses it to choose its part (so
the dataset inside it names its own split). In-memory datasets stay in memory (whole-tensor
batches); others are wrapped sample by sample.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from zoo.api import InMemoryDataset, Transform, ZooError

CHUNK = 1024  # samples transformed at a time by `transformed`


def subset(dataset: Dataset, split: str, count: int | None = None, fraction: float | None = None, seed: int = 0,
           splits: list[str] | None = None) -> Dataset:
    """A random ``count`` (or ``fraction``) of a dataset's samples.

    Drawn with ``seed``, kept in their original order. ``splits`` limits it to those splits (say
    ``[train]``: few training samples, the whole test split); ``split`` is supplied by zoo."""
    if splits is not None and split not in splits:
        return dataset
    if (count is None) == (fraction is None):
        raise ZooError("give either count or fraction")
    n = len(dataset)
    if fraction is not None and not 0 < fraction <= 1:
        raise ZooError(f"fraction must be in (0, 1], got {fraction}")
    size = count if count is not None else max(1, round(fraction * n))
    if not 0 < size <= n:
        raise ZooError(f"count must be between 1 and the dataset's {n:,} samples, got {size:,}")
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values
    return _take(dataset, chosen, {"subset": size})


def random_split(dataset: Dataset, split: str, parts: dict[str, float], seed: int = 0) -> Dataset:
    """One part of a seeded random partition of a dataset, e.g. a validation split carved from training data.

    ``parts`` maps each part's name to its share (summing to 1), e.g. ``{train: 0.9, val: 0.1}``;
    ``split`` (supplied by zoo) chooses the part."""
    if split not in parts:
        raise ZooError(f"split '{split}' is not one of the parts ({', '.join(parts)}); "
                       "data.train_split and data.eval_split name parts")
    if any(share <= 0 for share in parts.values()) or not math.isclose(sum(parts.values()), 1, abs_tol=1e-6):
        raise ZooError(f"parts are positive shares summing to 1, got {parts}")
    n = len(dataset)
    sizes = [math.floor(share * n) for share in parts.values()]
    for i in range(n - sum(sizes)):  # the remainder, one each, as torch.utils.data.random_split does
        sizes[i % len(sizes)] += 1
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    start = sum(sizes[: list(parts).index(split)])
    chosen = order[start : start + sizes[list(parts).index(split)]].sort().values
    if len(chosen) == 0:
        raise ZooError(f"part '{split}' of {n:,} samples is empty")
    return _take(dataset, chosen, {"part": split})


def concat(datasets: list[Dataset]) -> Dataset:
    """Datasets joined one after the other; their labels must mean the same classes."""
    if not datasets:
        raise ZooError("give at least one dataset")
    infos = [getattr(d, "info", {}) for d in datasets]
    info = {"name": "+".join(str(i.get("name", "?")) for i in infos)}
    for key in ("classes", "input"):
        values = [i.get(key) for i in infos]
        if values[0] is not None and all(v == values[0] for v in values):
            info[key] = values[0]
    if all(hasattr(d, "tensors") for d in datasets):
        pairs = [d.tensors() for d in datasets]
        scales = {getattr(d, "divide_by", None) for d in datasets}
        shapes = {(tuple(x.shape[1:]), x.dtype, tuple(y.shape[1:]), y.dtype) for x, y in pairs}
        if len(scales) == 1 and len(shapes) == 1:
            return InMemoryDataset(torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs]),
                                   scales.pop(), info)
    joined = ConcatDataset(datasets)
    joined.info = info
    return joined


def transformed(dataset: Dataset, transform: list[Transform], seed: int = 0) -> InMemoryDataset:
    """A dataset with transforms applied once to every sample: a fixed altered copy.

    Random augmentations are drawn once with ``seed``: MNIST shifted by up to 2 pixels, say, to
    measure robustness. For augmentation that changes every epoch use ``data.transform``."""
    if not hasattr(dataset, "batch"):
        raise ZooError("transformed works on in-memory datasets (ones with tensors())")
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = [], []
    for start in range(0, len(dataset), CHUNK):
        x, y = dataset.batch(torch.arange(start, min(start + CHUNK, len(dataset))))
        for step in transform:
            x, y = step(x, y, generator)
        inputs.append(x)
        targets.append(y)
    info = {k: v for k, v in getattr(dataset, "info", {}).items() if k != "input"}  # the inputs changed
    return InMemoryDataset(torch.cat(inputs), torch.cat(targets), info={**info, "transformed": True})


def _take(dataset: Dataset, indices: torch.Tensor, note: dict) -> Dataset:
    info = {**getattr(dataset, "info", {}), **note}
    if hasattr(dataset, "tensors"):
        inputs, targets = dataset.tensors()
        return InMemoryDataset(inputs[indices], targets[indices], getattr(dataset, "divide_by", None), info)
    taken = Subset(dataset, indices.tolist())
    taken.info = info
    return taken
