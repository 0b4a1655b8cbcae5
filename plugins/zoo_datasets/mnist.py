"""MNIST and Fashion-MNIST from IDX files (gzip or raw), an .npz, or the notebook's .npy layout."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from zoo.api import InMemoryDataset, ZooError, home
from zoo.api import download as fetch
from zoo_datasets import idx

BUNDLED = Path(__file__).parent / "data" / "mnist"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# File-name prefixes of each split; "train-5k" is the real subset bundled with zoo.
PREFIXES = {"train": ("train", "train-5k"), "test": ("t10k",)}
PARTS = {"images": "images-idx3-ubyte", "labels": "labels-idx1-ubyte"}


@dataclass(frozen=True)
class Source:
    """Where a dataset is published and the checksums of its canonical files (keyed without .gz)."""

    name: str
    title: str
    mirrors: tuple[str, ...]
    gz_md5: dict[str, str]
    raw_md5: dict[str, str]
    classes: tuple[str, ...]
    hint: str = ""


MNIST = Source(
    "mnist",
    "MNIST",
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    gz_md5={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        "train-5k-images-idx3-ubyte": "81edc6ee08338daf429913bd1a71a8ff",
        "train-5k-labels-idx1-ubyte": "12a57e01969d72ff608d06fba11a36a0",
    },
    raw_md5={
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        "train-5k-images-idx3-ubyte": "cf43cf5099b59d94a38ce26ba7d8c3cf",
        "train-5k-labels-idx1-ubyte": "0b46166b7c9707a10274bd2f91b08208",
    },
    classes=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = Source(
    "fashion-mnist",
    "Fashion-MNIST",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    gz_md5={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    raw_md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    hint=" On Debian, 'apt-get install dataset-fashion-mnist' puts it in /usr/share/datasets/fashion-mnist.",
)


def mnist(
    root: str | os.PathLike | None = None,
    split: Literal["train", "test"] = "train",
    download: bool = False,
    mirror: str | None = None,
) -> InMemoryDataset:
    """MNIST digits, 28x28 uint8, 10 classes; with no root, the real subset that ships with zoo.

    The bundled data is the full 10,000-image test split and 5,000 real training images.
    ``download=True`` fetches the canonical files, checksummed, into $ZOO_HOME/data/mnist (a recipe
    never chooses where zoo writes: ``root`` names a folder that already holds the files).
    """
    if root is None:
        root = home() / "data" / "mnist" if download else BUNDLED
    return load(MNIST, Path(root), split, download, mirror)


def fashion_mnist(
    root: str | os.PathLike | None = None,
    split: Literal["train", "test"] = "train",
    download: bool = False,
    mirror: str | None = None,
) -> InMemoryDataset:
    """Fashion-MNIST clothing, 28x28 uint8, 10 classes; reads Debian's dataset-fashion-mnist by default."""
    if root is None:
        root = DEBIAN_FASHION if DEBIAN_FASHION.is_dir() else home() / "data" / "fashion-mnist"
    return load(FASHION_MNIST, Path(root), split, download, mirror)


def load(source: Source, root: Path, split: str, download: bool, mirror: str | None) -> InMemoryDataset:
    """One split of ``source`` from ``root`` (a folder, or an .npz file), downloading if asked."""
    if root.suffix == ".npz":
        images, labels = _from_npz(root, split)
    else:
        files = _find_idx(root, split)
        if files is None and download:
            if root != home() / "data" / source.name:
                raise ZooError(f"download=True fetches {source.title} into {home() / 'data' / source.name}, which zoo "
                               f"chooses: leave out root, or give a root that already holds the files (not {root})")
            _download(source, root, split, mirror)
            files = _find_idx(root, split)
        if files is not None:
            images, labels = (_read_idx(source, path) for path in files)
        elif (root / f"{source.name}.npz").is_file():
            images, labels = _from_npz(root / f"{source.name}.npz", split)
        elif (root / f"x_{split}.npy").is_file():
            images, labels = _from_npy(root, split)
        else:
            raise _missing(source, root, split)
    images, labels = _check(images, labels, root, source)
    return InMemoryDataset(
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(labels).long(),
        divide_by=255,
        info={"name": source.name, "split": split, "root": str(root), "classes": list(source.classes),
              "input": {"kind": "image", "shape": [1, 28, 28], "dtype": "float32", "mode": "L", "range": [0.0, 1.0]}},
    )


def _find_idx(root: Path, split: str) -> tuple[Path, Path] | None:
    for prefix in PREFIXES[split]:
        found = [_first_existing(root, f"{prefix}-{part}") for part in PARTS.values()]
        if all(found):
            return found[0], found[1]
        if any(found):
            present = next(p for p in found if p)
            raise ZooError(f"{present} is there but its {'labels' if found[0] else 'images'} file is missing")
    return None


def _first_existing(root: Path, stem: str) -> Path | None:
    return next((p for p in (root / f"{stem}.gz", root / stem) if p.is_file()), None)


def _read_idx(source: Source, path: Path) -> np.ndarray:
    """The verified array of an IDX file, read once per version of the file (a sweep's variants and
    the train and test splits of one run read the same files again)."""
    stat, stem = path.stat(), path.name.removesuffix(".gz")
    known = frozenset(_known(source.gz_md5, stem)), frozenset(_known(source.raw_md5, stem))
    return _verified(path.resolve(), stat.st_size, stat.st_mtime_ns, *known).copy()


@functools.lru_cache(maxsize=8)
def _verified(path: Path, size: int, mtime_ns: int, gz_md5: frozenset, raw_md5: frozenset) -> np.ndarray:
    return np.array(idx.parse(idx.verify(path.read_bytes(), path, set(gz_md5), set(raw_md5)), path))


def _known(table: dict[str, str], stem: str) -> set[str]:
    return {table[stem]} if stem in table else set()


def _download(source: Source, root: Path, split: str, mirror: str | None) -> None:
    mirrors = (mirror,) if mirror else source.mirrors
    for part in PARTS.values():
        stem = f"{PREFIXES[split][0]}-{part}"
        dest = root / f"{stem}.gz"
        gz, raw = _known(source.gz_md5, stem), _known(source.raw_md5, stem)
        fetch(
            [f"{m.rstrip('/')}/{dest.name}" for m in mirrors],
            dest,
            verify=lambda path, dest=dest, gz=gz, raw=raw: idx.verify(path.read_bytes(), dest, gz, raw),
        )


def _from_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            keys = (f"x_{split}", f"y_{split}")
            missing = [k for k in keys if k not in arrays]
            if missing:
                raise ZooError(f"{path}: has no {', '.join(missing)} (it holds {', '.join(arrays.files)})")
            return arrays[keys[0]], arrays[keys[1]]
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: not a readable .npz file ({exc})") from exc


def _from_npy(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference notebook's layout: x_train.npy and y_train_label.npy."""
    paths = root / f"x_{split}.npy", root / f"y_{split}_label.npy"
    try:
        return tuple(np.load(p, allow_pickle=False) for p in paths)
    except (OSError, ValueError) as exc:
        raise ZooError(f"{root}: cannot read {paths[0].name} / {paths[1].name} ({exc})") from exc


def _check(images: np.ndarray, labels: np.ndarray, root: Path, source: Source) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim == 2 and images.shape[1] == 28 * 28:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ZooError(f"{root}: images have shape {images.shape}, expected (N, 28, 28) or (N, 784)")
    if images.dtype != np.uint8:
        raise ZooError(f"{root}: images are {images.dtype}, expected uint8 pixels 0..255")
    labels = labels.reshape(-1)
    if len(images) != len(labels):
        raise ZooError(f"{root}: {len(images)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= len(source.classes)):
        raise ZooError(f"{root}: labels outside 0..{len(source.classes) - 1}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _missing(source: Source, root: Path, split: str) -> ZooError:
    idx_names = " or ".join(f"{p}-images-idx3-ubyte[.gz] + {p}-labels-idx1-ubyte[.gz]" for p in PREFIXES[split])
    return ZooError(
        f"{source.title} {split} split not found in {root}: looked for {idx_names}, "
        f"{source.name}.npz, and x_{split}.npy + y_{split}_label.npy. "
        f"Pass download=True to fetch the canonical files, or root= a folder that holds them.{source.hint}"
    )
