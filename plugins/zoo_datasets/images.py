"""Image files in class folders (``ROOT/SPLIT/CLASS/*.png``), decoded one sample at a time with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.api import ZooError, install_hint

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = {1: "L", 3: "RGB"}


def image_folder(split: str, root: str, channels: int = 1, size: int | None = None) -> ImageFolder:
    """Images under ``root/<split>/<class>/``; the class folders of all splits, sorted, are the labels.

    Each image becomes a float tensor (channels, height, width) in [0, 1], resized to ``size`` x
    ``size`` when given (else every image must have the first one's size). Needs Pillow:
    the ``images`` extra. With ``data.workers``, images decode in worker processes.
    """
    if channels not in MODES:
        raise ZooError(f"image-folder: channels must be 1 (grey) or 3 (RGB), got {channels}")
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise ZooError(f"image-folder: no folder {folder} (expected {root}/{split}/<class>/<image files>)")
    classes = sorted({p.name for p in Path(root).expanduser().glob("*/*") if p.is_dir()})
    files = [(path, label) for label, name in enumerate(classes) if (folder / name).is_dir()
             for path in sorted((folder / name).iterdir()) if path.suffix.lower() in EXTENSIONS]
    if not files:
        raise ZooError(f"image-folder: no images ({', '.join(EXTENSIONS)}) in the class folders of {folder}")
    return ImageFolder(files, classes, MODES[channels], size, {"name": "image-folder", "split": split, "root": root})


class ImageFolder(Dataset):
    """Map-style dataset of (image file, label) pairs, decoded in ``__getitem__``."""

    def __init__(self, files: list[tuple[Path, int]], classes: list[str], mode: str, size: int | None, info: dict):
        self.files, self.mode, self.size = files, mode, size
        self.shape = None if size else _open(files[0][0], mode).size
        width, height = (size, size) if size else self.shape
        spec = {"kind": "image", "shape": [len(mode), height, width], "dtype": "float32", "mode": mode,
                "range": [0.0, 1.0]}
        self.info = {**info, "classes": classes, "input": spec}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, label = self.files[index]
        image = _open(path, self.mode)
        if self.size:
            image = image.resize((self.size, self.size))
        elif image.size != self.shape:
            raise ZooError(f"image-folder: {path} is {image.size[0]}x{image.size[1]}, the first image "
                           f"{self.shape[0]}x{self.shape[1]}; give the dataset a size to resize them all")
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        x = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy())
        return x, torch.tensor(label)


def _open(path: Path, mode: str):
    try:
        from PIL import Image
    except ImportError:
        raise ZooError(f"image-folder needs Pillow: {install_hint('images')}") from None
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except OSError as exc:
        raise ZooError(f"image-folder: cannot decode {path}: {exc}") from None
