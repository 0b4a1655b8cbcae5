"""Datasets in shards read by sample index: WebDataset tar shards (https://github.com/webdataset/webdataset)
here, Parquet row groups in zoo_datasets.parquet.

A split packed by ``zoo data pack`` is a folder (or an fsspec URL) ``ROOT/SPLIT/`` of tar files and a
``manifest.json``: how many samples each shard holds, its size and sha256, the classes and the input
spec. Each sample is the WebDataset convention: files ``KEY.EXT`` next to each other in the tar, an
image (``jpg``, ``png`` ...) or an array (``input.npy``) and a label (``cls``, its number as text) or an
array (``target.npy``). Shards written by other tools are read too, listed by a brace pattern.

Each process indexes a shard's members once, when it first reads from it (the tar headers: a seek
per member), and keeps at most ``OPEN_SHARDS`` open; a sample is read with one positioned read per
file. Reading by index is what makes every order zoo's to choose: an epoch shuffles the shards,
then the samples within windows of ``window`` shards (reads stay within a few shards at a time);
ranks take every world-th sample of that order and workers whole batches, and a resume restarts
the order at the batch it stopped at. WebDataset's own streaming loader was not used for reading
because its position cannot be restored mid-epoch (only its shard list), and its ``wids`` index
pickles its index files; its ``ShardWriter`` writes the shards."""

from __future__ import annotations

import bisect
import collections
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.api import ZooError, install_hint
from zoo_datasets.images import Decoding, Interpolation, decoding

FORMAT = "zoo-shards/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
MAX_SHARDS = 1_000_000
MAX_FILE_BYTES = 256 << 20  # of one file of a sample (ZOO_MAX_SAMPLE_BYTES sets another bound)
OPEN_SHARDS = 8  # indexed shards each process keeps open
IMAGES = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class Shard:
    """One shard of a split -- a tar file, or a Parquet file's row group ``part`` -- where it is, how
    many samples it holds, its size and sha256 (from a manifest; None otherwise)."""

    url: str
    samples: int
    bytes: int | None = None
    sha256: str | None = None
    part: int = 0  # of a file of several shards: a Parquet file's row group


def join(root: str, name: str) -> str:
    """``name`` in the folder or URL ``root``."""
    return f"{root.rstrip('/')}/{name}" if "://" in root else str(Path(root).expanduser() / name)


def open_binary(url: str):
    """A seekable binary file: a local path, or any URL fsspec reads (s3://, gs://, https://, hf://)."""
    if "://" not in url:
        return open(url, "rb")
    from zoo.api import may_fetch

    may_fetch(url)
    try:
        import fsspec
    except ImportError:
        raise ZooError(f"{url}: reading URLs needs fsspec: {install_hint('webdataset')}") from None
    filesystem, path = fsspec.core.url_to_fs(url)
    return filesystem.open(path, "rb")


def read_manifest(folder: str) -> dict:
    """The manifest of a packed split, checked: shard names are plain file names in ``folder``, and
    every count and size is a bounded whole number."""
    where = join(folder, MANIFEST)
    try:
        with open_binary(where) as file:
            text = file.read(MAX_MANIFEST_BYTES + 1)
        manifest = json.loads(text) if len(text) <= MAX_MANIFEST_BYTES else None
    except FileNotFoundError:
        raise ZooError(f"{where}: no such file; make one with: zoo data pack SOURCE {Path(folder).parent}") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ZooError(f"{where}: cannot read it ({exc})") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT and isinstance(shards, list)
            and len(shards) <= MAX_SHARDS and all(_entry(s) for s in shards)
            and isinstance(manifest.get("input"), dict) and isinstance(manifest.get("classes"), (list, type(None)))):
        raise ZooError(f"{where}: not a {FORMAT} manifest (zoo data pack writes them)")
    from zoo.api import InputSpec, read_typed

    try:
        read_typed(InputSpec, manifest["input"], f"{where}: input")
    except ValueError as exc:
        raise ZooError(f"{where}: input: {exc}") from None
    return manifest


def _entry(shard: object) -> bool:
    return (isinstance(shard, dict) and isinstance(shard.get("name"), str) and NAME.fullmatch(shard["name"]) is not None
            and all(isinstance(shard.get(k), int) and not isinstance(shard.get(k), bool) and 0 <= shard[k] < 1 << 50
                    for k in ("samples", "bytes"))
            and isinstance(shard.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", shard["sha256"]) is not None)


def index(file, name: str) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """The samples of a tar file in order: each its key and, by extension, its files' (offset, size)."""
    samples: list[tuple[str, dict[str, tuple[int, int]]]] = []
    limit = int(os.environ.get("ZOO_MAX_SAMPLE_BYTES") or MAX_FILE_BYTES)
    try:
        with tarfile.open(fileobj=file, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, base = member.name.rpartition("/")
                stem, dot, extension = base.partition(".")
                if not dot or stem == "":
                    continue
                if member.size > limit:
                    raise ZooError(f"{name}: {member.name} is {member.size:,} bytes, more than {limit:,} "
                                   "(ZOO_MAX_SAMPLE_BYTES raises the bound)")
                key = f"{folder}/{stem}" if folder else stem
                if not samples or samples[-1][0] != key:
                    samples.append((key, {}))
                samples[-1][1][extension.lower()] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise ZooError(f"{name}: not a readable tar shard ({exc}); zoo data verify checks a packed split") from None
    return samples


class TarShard:
    """An open tar shard: its file and its index (the count checked against the manifest's)."""

    def __init__(self, shard: Shard):
        self.url = shard.url
        try:
            self.file = open_binary(shard.url)
        except OSError as exc:
            raise ZooError(f"{shard.url}: cannot open the shard ({exc.strerror or exc})") from None
        self.samples = index(self.file, shard.url)
        if len(self.samples) != shard.samples:
            self.file.close()
            raise ZooError(f"{shard.url}: holds {len(self.samples)} samples, its manifest says {shard.samples}; "
                           "zoo data verify checks a packed split")

    def sample(self, number: int) -> tuple[str, dict[str, bytes]]:
        """The key of sample ``number`` and its files by extension (those zoo reads)."""
        key, files = self.samples[number]
        where = f"{self.url}: {key}"
        return where, {e: _read(self.file, place, where) for e, place in files.items() if e in READ}

    def close(self) -> None:
        self.file.close()


READ = (*IMAGES, "input.npy", "cls", "target.npy")  # the files of a sample zoo reads


class _Open:
    """The shards this process has open (``opener`` opens one), the least recently used closed past
    ``limit``. A DataLoader worker starts with none of its parent's (file positions are not shared)."""

    def __init__(self, opener, limit: int):
        self.opener, self.limit = opener, limit
        self.pid = os.getpid()
        self.shards: collections.OrderedDict[Shard, object] = collections.OrderedDict()

    def get(self, shard: Shard):
        if self.pid != os.getpid():
            self.pid, self.shards = os.getpid(), collections.OrderedDict()
        if shard in self.shards:
            self.shards.move_to_end(shard)
            return self.shards[shard]
        self.shards[shard] = self.opener(shard)
        while len(self.shards) > self.limit:
            self.shards.popitem(last=False)[1].close()
        return self.shards[shard]


class ShardedDataset(Dataset):
    """Samples of shards by index (see the module's docstring): ``opener`` opens a shard (an object
    with ``sample(number) -> (where, files)`` and ``close()``), at most ``open_shards`` at a time.
    ``order(generator)`` is an epoch's order: the shards shuffled, then the samples of each
    ``window`` consecutive shards together."""

    def __init__(self, shards: list[Shard], decode: Decoding | None, info: dict, window: int = 8,
                 opener=TarShard, open_shards: int = OPEN_SHARDS):
        self.shards, self.decode, self.info, self.window = shards, decode, info, window
        self.ends = np.cumsum([s.samples for s in shards]).tolist()
        self.spec_shape = tuple(info["input"].get("shape") or ())
        self.open = _Open(opener, open_shards)

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def order(self, generator: torch.Generator) -> Tensor:
        starts = [0, *self.ends[:-1]]
        shards = torch.randperm(len(self.shards), generator=generator).tolist()
        parts = []
        for first in range(0, len(shards), self.window):
            window = torch.cat([torch.arange(starts[s], self.ends[s]) for s in shards[first : first + self.window]])
            parts.append(window[torch.randperm(len(window), generator=generator)])
        return torch.cat(parts)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.sample(index, None)

    def sample(self, index: int, seed: int | None) -> tuple[Tensor, Tensor]:
        number = bisect.bisect_right(self.ends, index)
        where, files = self.open.get(self.shards[number]).sample(index - (self.ends[number - 1] if number else 0))
        image = next((e for e in ("image", *IMAGES) if e in files), None)
        if image is not None and self.decode is not None:
            x = self.decode(files[image], f"{where} ({image})", seed)
        elif "input.npy" in files:
            x = torch.from_numpy(_array(files["input.npy"], where, self.spec_shape))
        else:
            raise ZooError(f"{where}: no input ({', '.join(IMAGES)} or input.npy) in the sample")
        if "cls" in files:
            label = files["cls"]
            text = label[:32].strip() if isinstance(label, bytes) else str(label).encode()
            if not text.lstrip(b"-").isdigit():
                raise ZooError(f"{where}.cls: not a class number: {text[:20]!r}")
            return x, torch.tensor(int(text))
        if "target.npy" in files:
            return x, torch.from_numpy(_array(files["target.npy"], where, None))
        raise ZooError(f"{where}: no label (cls or target.npy) in the sample")


def _read(file, place: tuple[int, int], where: str) -> bytes:
    offset, size = place
    if hasattr(file, "fileno") and not hasattr(file, "fs"):
        data = os.pread(file.fileno(), size, offset)
    else:
        file.seek(offset)
        data = file.read(size)
    if len(data) != size:
        raise ZooError(f"{where}: the shard ends inside the sample; zoo data verify checks a packed split")
    return data


def _array(data: bytes, where: str, shape: tuple | None) -> np.ndarray:
    from zoo.api import read_npy

    limit = int(np.prod(shape)) if shape else MAX_FILE_BYTES
    try:
        return read_npy(io.BytesIO(data), limit)
    except ZooError as exc:
        raise ZooError(f"{where}: {exc}".replace("the .npy data: ", "")) from None


def webdataset(split: str, root: str | None = None, urls: str | None = None, channels: int | None = None,
               size: int | None = None, resize: int | None = None, crop: int | None = None,
               interpolation: Interpolation = "bilinear", mean: list[float] | None = None,
               std: list[float] | None = None, augment: bool = False, scale: list[float] = [0.08, 1.0],
               ratio: list[float] = [0.75, 1.3333], flip: float = 0.5, classes: list[str] | None = None,
               window: int = 8, training: bool = False) -> ShardedDataset:
    """Samples in WebDataset tar shards, read by index: ``root`` is what ``zoo data pack`` wrote (a
    folder or an fsspec URL holding ``SPLIT/manifest.json``), or ``urls`` a brace pattern of shards
    from elsewhere, ``{split}`` standing for the split (``shards/{split}-{000000..000099}.tar``; each
    shard is indexed once to count its samples; ``classes`` names their labels).

    Images decode as image-folder's do (``channels``, ``size``, ``crop`` ... ``augment``, the packed
    input spec by default); ``input.npy`` arrays as they are. An epoch shuffles the shards, then the
    samples of each ``window`` shards together; memory holds no samples beyond the batches in flight
    (``data.workers`` x ``data.prefetch``) and the indexes of the shards open (8 per process).
    """
    if (root is None) == (urls is None):
        raise ZooError("webdataset: give root (a folder zoo data pack wrote) or urls (a pattern of tar shards)")
    if window < 1:
        raise ZooError(f"webdataset: window is a number of shards, at least 1; got {window}")
    if root is not None:
        folder = join(root, split)
        manifest = read_manifest(folder)
        shards = [Shard(join(folder, s["name"]), s["samples"], s["bytes"], s["sha256"]) for s in manifest["shards"]]
        spec, classes = manifest["input"], classes or manifest["classes"]
    else:
        shards = [Shard(url, 0) for url in _expand(urls.replace("{split}", split))]
        shards = [Shard(s.url, len(_indexed(s.url))) for s in shards]
        spec = {}
    if not shards or sum(s.samples for s in shards) == 0:
        raise ZooError(f"webdataset: no samples in the shards of split '{split}'")
    how = image_decoding("webdataset", spec, None, channels, size, resize, crop, interpolation, mean, std, augment,
                         scale, ratio, flip, training)
    info = {"name": "webdataset", "split": split, "root": root or urls, "classes": classes,
            "input": how.input if how is not None else spec}
    if how is not None and spec.get("preprocess") and how.preprocess is None:
        raise ZooError("webdataset: the packed images are preprocessed (crop, mean, std) for their model; "
                       "give crop to read them")
    return ShardedDataset(shards, how, info, window)


def image_decoding(name: str, spec: dict, first: bytes | None, channels, size, resize, crop, interpolation, mean,
                   std, augment, scale, ratio, flip, training) -> Decoding | None:
    """How the images of dataset ``name`` decode: its parameters, else the packed input ``spec``'s,
    else at the size of the ``first`` image; None when the spec is not an image's."""
    if spec and spec.get("kind") != "image":
        return None
    packed = spec.get("preprocess") or {}
    if channels is None:
        channels = (spec.get("shape") or [3])[0]
    if crop is None and size is None and packed:
        crop, resize, interpolation = packed["crop"][0], packed["resize"][0], packed["interpolation"]
        mean, std = mean or packed["mean"], std or packed["std"]
    how = decoding(name, channels, size, resize, crop, interpolation, mean, std, augment, scale, ratio, flip, training)
    if how.preprocess is not None or size:
        return how
    if spec.get("shape"):
        return Decoding(how.mode, shape=(spec["shape"][2], spec["shape"][1]))
    if first is None:
        raise ZooError(f"{name}: give size (or crop) to read images of shards without a manifest")
    from zoo.api import open_image

    with io.BytesIO(first) as file:
        return Decoding(how.mode, shape=open_image(file, how.mode, f"{name}: the first image").size)


def _expand(pattern: str) -> list[str]:
    try:
        from braceexpand import braceexpand
    except ImportError:
        raise ZooError(f"webdataset: shard patterns need braceexpand: {install_hint('webdataset')}") from None
    return list(braceexpand(pattern))


def _indexed(url: str) -> list:
    try:
        with open_binary(url) as file:
            return index(file, url)
    except OSError as exc:
        raise ZooError(f"{url}: cannot open the shard ({exc.strerror or exc})") from None


def sha256(url: str) -> tuple[str, int]:
    """The sha256 of a file and its size, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open_binary(url) as file:
        while block := file.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def verify(folder: str) -> Iterator[tuple[str, str | None]]:
    """Each shard of a packed split checked against its manifest: (name, None) when it matches, else
    (name, what is wrong)."""
    manifest = read_manifest(folder)
    for entry in manifest["shards"]:
        url = join(folder, entry["name"])
        try:
            digest, size = sha256(url)
        except OSError as exc:
            yield entry["name"], f"cannot read it ({exc.strerror or exc})"
            continue
        if size != entry["bytes"] or digest != entry["sha256"]:
            yield entry["name"], f"does not match the manifest ({size:,} bytes, sha256 {digest[:12]}...; " \
                                 f"the manifest says {entry['bytes']:,} bytes, {entry['sha256'][:12]}...)"
            continue
        try:
            count = len(_indexed(url))
        except ZooError as exc:
            yield entry["name"], str(exc).removeprefix(f"{url}: ")
            continue
        yield entry["name"], None if count == entry["samples"] else \
            f"holds {count} samples, the manifest says {entry['samples']}"
