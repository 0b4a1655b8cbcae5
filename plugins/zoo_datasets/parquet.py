"""Datasets in Parquet files (the Hugging Face Hub's format for datasets), read by sample index: each
row group is a shard of zoo_datasets.shards, read whole by pyarrow when a sample of it is needed.

Hugging Face ``datasets`` streams the same files (``load_dataset(..., streaming=True)``), but its
resumable state leaves the shuffle buffer out (on resume: "Loading a state dict of a shuffle buffer
of a dataset without the buffer content. The shuffle buffer will be refilled", datasets#7444), so a
resumed run would not see the samples the uninterrupted one saw. Reading row groups by index with
pyarrow, which ``datasets`` reads them with, keeps zoo's orders and exact resume; ``hf://`` URLs go
through huggingface_hub's fsspec file system."""

from __future__ import annotations

import functools
import glob
import json

from zoo.api import ZooError, install_hint
from zoo_datasets.images import Interpolation
from zoo_datasets.shards import Shard, ShardedDataset, image_decoding, open_binary

OPEN_ROW_GROUPS = 2  # row groups each process holds decoded (Hub image files: about 100 MB each)


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ZooError(f"parquet: reading Parquet needs pyarrow: {install_hint('parquet')}") from None
    return pq


def files_of(pattern: str) -> list[str]:
    """The files a glob pattern names: local, or any fsspec URL (hf://datasets/ORG/NAME/..., s3://)."""
    if "://" not in pattern:
        return sorted(glob.glob(pattern))
    from zoo.api import may_fetch

    may_fetch(pattern)
    import fsspec

    filesystem, _ = fsspec.core.url_to_fs(pattern)
    protocol = pattern.split("://", 1)[0]
    return [f"{protocol}://{path}" for path in sorted(filesystem.glob(pattern))]


class RowGroup:
    """One row group of a Parquet file, its input and label columns read."""

    def __init__(self, shard: Shard, input: str, label: str):
        pq = _pyarrow()
        self.where = f"{shard.url}: row group {shard.part}"
        try:
            with open_binary(shard.url) as file:
                table = pq.ParquetFile(file).read_row_group(shard.part, columns=[input, label])
        except (OSError, ValueError, KeyError) as exc:  # pyarrow's errors are ArrowException, an OSError/ValueError
            raise ZooError(f"{self.where}: cannot read it ({str(exc).splitlines()[0] if str(exc) else exc})") from None
        if table.num_rows != shard.samples:
            raise ZooError(f"{self.where}: holds {table.num_rows} rows, its file's footer says {shard.samples}")
        self.inputs, self.labels = table.column(input).to_pylist(), table.column(label).to_pylist()

    def sample(self, number: int) -> tuple[str, dict[str, object]]:
        value, label = self.inputs[number], self.labels[number]
        if isinstance(value, dict):  # the Hub's image feature: {"bytes": ..., "path": ...}
            value = value.get("bytes")
        where = f"{self.where}, row {number}"
        if isinstance(value, bytes):
            return where, {"image": value, "cls": label}
        raise ZooError(f"{where}: the input is {type(value).__name__}, not an image file's bytes")

    def close(self) -> None:
        self.inputs = self.labels = None


def parquet(split: str, files: str, input: str = "image", label: str = "label", channels: int = 3,
            size: int | None = None, resize: int | None = None, crop: int | None = None,
            interpolation: Interpolation = "bilinear", mean: list[float] | None = None,
            std: list[float] | None = None, augment: bool = False, scale: list[float] = [0.08, 1.0],
            ratio: list[float] = [0.75, 1.3333], flip: float = 0.5, classes: list[str] | None = None,
            window: int = 8, training: bool = False) -> ShardedDataset:
    """Images and class labels in Parquet files: ``files`` a glob pattern, local or an fsspec URL, in
    which ``{split}`` is the split (``hf://datasets/ylecun/mnist/mnist/{split}-*.parquet``); the
    ``input`` column holds image files (binary, or the Hub's image feature), ``label`` class numbers.
    The class names come from the Hub's ClassLabel feature when the files carry it, else ``classes``.

    Images decode as image-folder's do (``channels``, ``size``, ``crop`` ... ``augment``). Each row
    group is a shard: an epoch shuffles them, then the rows of each ``window`` row groups together;
    each process holds 2 row groups decoded (their size is the file's choice).
    """
    pq = _pyarrow()
    urls = files_of(files.replace("{split}", split))
    if not urls:
        raise ZooError(f"parquet: no files match {files.replace('{split}', split)}")
    shards, names = [], None
    for url in urls:
        try:
            with open_binary(url) as file:
                opened = pq.ParquetFile(file)
                meta, columns = opened.metadata, set(opened.schema_arrow.names)
        except (OSError, ValueError) as exc:
            raise ZooError(f"{url}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        if {input, label} - columns:
            raise ZooError(f"{url}: no column {sorted({input, label} - columns)[0]!r}; its columns are "
                           f"{', '.join(sorted(columns))} (set input and label)")
        names = names or _class_names(meta.metadata or {}, label)
        shards += [Shard(url, meta.row_group(i).num_rows, part=i) for i in range(meta.num_row_groups)]
    if sum(s.samples for s in shards) == 0:
        raise ZooError(f"parquet: no rows in the files of split '{split}'")
    first = RowGroup(next(s for s in shards if s.samples), input, label).sample(0)
    how = image_decoding("parquet", {}, first[1]["image"], channels, size, resize, crop, interpolation, mean, std,
                         augment, scale, ratio, flip, training)
    info = {"name": "parquet", "split": split, "root": files, "classes": classes or names, "input": how.input}
    return ShardedDataset(shards, how, info, window, opener=functools.partial(RowGroup, input=input, label=label),
                          open_shards=OPEN_ROW_GROUPS)


def _class_names(metadata: dict, label: str) -> list[str] | None:
    """The names of a ClassLabel column, from the features the Hub's files record."""
    try:
        features = json.loads(metadata.get(b"huggingface", b"{}"))["info"]["features"]
        names = features[label]["names"]
    except (ValueError, KeyError, TypeError):
        return None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None

