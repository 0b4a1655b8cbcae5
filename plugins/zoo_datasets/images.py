"""Image files in class folders (``ROOT/SPLIT/CLASS/*.png``), decoded one sample at a time with Pillow."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.api import ZooError, install_hint

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = {1: "L", 3: "RGB"}


def image_folder(split: str, root: str, channels: int = 1, size: int | None = None, resize: int | None = None,
                 crop: int | None = None,
                 interpolation: Literal["nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"] = "bilinear",
                 mean: list[float] | None = None, std: list[float] | None = None) -> ImageFolder:
    """Images under ``root/<split>/<class>/``; the class folders of all splits, sorted, are the labels.

    Each image becomes a float tensor (channels, height, width) in [0, 1], resized to ``size`` x
    ``size`` when given (else every image must have the first one's size). With ``crop`` instead, as
    a pretrained model's evaluation transform does it: the shorter side resized to ``resize``
    (default: crop / 0.875) with ``interpolation``, the centre ``crop`` x ``crop`` cut out, and with
    ``mean`` and ``std`` normalized per channel; the weights record that preprocessing, so predict
    and serve apply it to any image. Needs Pillow (the ``images`` extra; torchvision for ``crop``).
    With ``data.workers``, images decode in worker processes.
    """
    if channels not in MODES:
        raise ZooError(f"image-folder: channels must be 1 (grey) or 3 (RGB), got {channels}")
    if crop is not None and size is not None:
        raise ZooError("image-folder: give size (resize every image to it) or crop (resize, then cut the centre), "
                       "not both")
    if (mean is None) != (std is None) or (mean is not None and crop is None):
        raise ZooError("image-folder: mean and std come together, with crop")
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise ZooError(f"image-folder: no folder {folder} (expected {root}/{split}/<class>/<image files>)")
    classes = sorted({p.name for p in Path(root).expanduser().glob("*/*") if p.is_dir()})
    files = [(path, label) for label, name in enumerate(classes) if (folder / name).is_dir()
             for path in sorted((folder / name).iterdir()) if path.suffix.lower() in EXTENSIONS]
    if not files:
        raise ZooError(f"image-folder: no images ({', '.join(EXTENSIONS)}) in the class folders of {folder}")
    preprocess = None
    if crop is not None:
        preprocess = {"resize": [resize or int(crop / 0.875)], "interpolation": interpolation, "crop": [crop, crop],
                      "mean": mean or [0.0] * channels, "std": std or [1.0] * channels}
    return ImageFolder(files, classes, MODES[channels], size, {"name": "image-folder", "split": split, "root": root},
                       preprocess)


class ImageFolder(Dataset):
    """Map-style dataset of (image file, label) pairs, decoded in ``__getitem__``."""

    def __init__(self, files: list[tuple[Path, int]], classes: list[str], mode: str, size: int | None, info: dict,
                 preprocess: dict | None = None):
        self.files, self.mode, self.size = files, mode, size
        if preprocess is not None:
            height, width = preprocess["crop"]
            self.shape = None
        else:
            self.shape = None if size else _open(files[0][0], mode).size
            width, height = (size, size) if size else self.shape
        spec = {"kind": "image", "shape": [len(mode), height, width], "dtype": "float32", "mode": mode,
                "range": None if preprocess else [0.0, 1.0], "preprocess": preprocess}
        self.info = {**info, "classes": classes, "input": spec}
        self.spec = None
        if preprocess is not None:
            from zoo.api import InputSpec, Preprocess

            try:
                self.spec = InputSpec("image", (len(mode), height, width), "float32", mode, preprocess=Preprocess(
                    **{k: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items()}))
            except ValueError as exc:
                raise ZooError(f"image-folder: {exc}") from None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        path, label = self.files[index]
        if self.spec is not None:  # exactly what zoo predict makes of the same file
            from zoo.api import prepare

            return prepare(str(path), self.spec)[0], torch.tensor(label)
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
