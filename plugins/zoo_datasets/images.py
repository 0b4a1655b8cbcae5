"""Image files in class folders (``ROOT/SPLIT/CLASS/*.png``), decoded one sample at a time with Pillow,
and how any image dataset turns a file into a model input (:class:`Decoding`, shared with the shards)."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.api import ZooError, install_hint

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = {1: "L", 3: "RGB"}
Interpolation = Literal["nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"]


@dataclass(frozen=True)
class Decoding:
    """How an image file becomes a model input: decoded into ``mode``, then resized to ``size`` x
    ``size``, or kept at ``shape`` (width, height), or -- with ``preprocess`` -- resized, centre-cropped
    and normalized as predict does it; when ``augment`` (training with a crop), a random-resized crop
    (``scale``, ``ratio``) and a horizontal flip with probability ``flip`` replace the centre crop."""

    mode: str
    size: int | None = None
    shape: tuple[int, int] | None = None
    preprocess: dict | None = None
    augment: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    flip: float = 0.5

    @property
    def input(self) -> dict:
        """The input spec an image dataset declares (``info["input"]``)."""
        if self.preprocess is not None:
            height, width = self.preprocess["crop"]
        else:
            width, height = (self.size, self.size) if self.size else self.shape
        return {"kind": "image", "shape": [len(self.mode), height, width], "dtype": "float32", "mode": self.mode,
                "range": None if self.preprocess else [0.0, 1.0], "preprocess": self.preprocess}

    @property
    def spec(self):
        """The InputSpec of :attr:`input` (with its preprocessing), as predict reads it."""
        from zoo.api import InputSpec, Preprocess

        spec = self.input
        preprocess = None if self.preprocess is None else Preprocess(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in self.preprocess.items()})
        return InputSpec("image", tuple(spec["shape"]), "float32", self.mode, preprocess=preprocess)

    def __call__(self, data: bytes | Path, name: str, seed: int | None = None) -> Tensor:
        """The model input of one image file (its path or its bytes); ``seed`` drives the augmentation."""
        from zoo.api import decode_image, open_image, pixels, prepare

        with open(data, "rb") if isinstance(data, Path) else io.BytesIO(data) as file:
            if self.preprocess is not None and not self.augment:  # exactly what zoo predict makes of the file
                return prepare(decode_image(file, self.spec, name), self.spec)[0]
            image = open_image(file, self.mode, name)
        if self.preprocess is not None:
            return self._augmented(image, seed or 0)
        if self.size:
            image = image.resize((self.size, self.size))
        elif image.size != self.shape:
            raise ZooError(f"{name} is {image.size[0]}x{image.size[1]}, the first image "
                           f"{self.shape[0]}x{self.shape[1]}; give the dataset a size to resize them all")
        return torch.from_numpy(pixels(image)).float().div_(255)

    def _augmented(self, image, seed: int) -> Tensor:
        """A Pillow image cropped at random, flipped, and normalized (torchvision.transforms.v2, on a
        tensor: measured 2.8x faster than on the Pillow image)."""
        from torchvision.transforms import v2

        pixels = torch.from_numpy(np.array(image))
        pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
            torch.default_generator.manual_seed(seed)  # (torch.manual_seed also seeds CUDA, and costs 1 ms)
            pixels = _augmentation(self.preprocess["crop"][0], self.scale, self.ratio,
                                   self.preprocess["interpolation"], self.flip)(pixels)
        return v2.functional.normalize(pixels.float().div_(255), list(self.preprocess["mean"]),
                                       list(self.preprocess["std"]))


@functools.lru_cache(maxsize=8)
def _augmentation(size: int, scale: tuple[float, float], ratio: tuple[float, float], interpolation: str,
                  flip: float):
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose([v2.RandomResizedCrop(size, list(scale), list(ratio), InterpolationMode(interpolation)),
                       v2.RandomHorizontalFlip(flip)])


def decoding(name: str, channels: int, size: int | None, resize: int | None, crop: int | None,
             interpolation: str, mean: list[float] | None, std: list[float] | None, augment: bool,
             scale: list[float], ratio: list[float], flip: float, training: bool) -> Decoding:
    """The :class:`Decoding` of an image dataset's parameters, checked (``name`` is the dataset's)."""
    if channels not in MODES:
        raise ZooError(f"{name}: channels must be 1 (grey) or 3 (RGB), got {channels}")
    if crop is not None and size is not None:
        raise ZooError(f"{name}: give size (resize every image to it) or crop (resize, then cut the centre), not both")
    if (mean is None) != (std is None) or (mean is not None and crop is None):
        raise ZooError(f"{name}: mean and std come together, with crop")
    if augment and crop is None:
        raise ZooError(f"{name}: augment crops at random to the size crop gives; set crop")
    if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1 and len(ratio) == 2 and 0 < ratio[0] <= ratio[1]
            and 0 <= flip <= 1):
        raise ZooError(f"{name}: scale is [low, high] within (0, 1], ratio [low, high] above 0, flip a probability")
    preprocess = None
    if crop is not None:
        preprocess = {"resize": [resize or int(crop / 0.875)], "interpolation": interpolation, "crop": [crop, crop],
                      "mean": mean or [0.0] * channels, "std": std or [1.0] * channels}
    how = Decoding(MODES[channels], size, None, preprocess, augment and training, tuple(scale), tuple(ratio), flip)
    if how.augment:  # made (and torchvision imported) here: DataLoader workers inherit it rather than each import it
        _augmentation(crop, how.scale, how.ratio, interpolation, flip)
    return how


def image_folder(split: str, root: str, channels: int = 1, size: int | None = None, resize: int | None = None,
                 crop: int | None = None, interpolation: Interpolation = "bilinear", mean: list[float] | None = None,
                 std: list[float] | None = None, augment: bool = False, scale: list[float] = [0.08, 1.0],
                 ratio: list[float] = [0.75, 1.3333], flip: float = 0.5, training: bool = False) -> ImageFolder:
    """Images under ``root/<split>/<class>/``; the class folders of all splits, sorted, are the labels.

    Each image becomes a float tensor (channels, height, width) in [0, 1], resized to ``size`` x
    ``size`` when given (else every image must have the first one's size). With ``crop`` instead, as
    a pretrained model's evaluation transform does it: the shorter side resized to ``resize``
    (default: crop / 0.875) with ``interpolation``, the centre ``crop`` x ``crop`` cut out, and with
    ``mean`` and ``std`` normalized per channel; the weights record that preprocessing, so predict
    and serve apply it to any image. With ``augment``, the training split (zoo sets ``training``)
    takes a random crop of ``scale`` of the area and ``ratio`` of the sides, resized to ``crop``, and
    a horizontal flip with probability ``flip``, as timm and torchvision train; the random choices
    depend on the run's seed, the epoch and the sample only. Needs Pillow (the ``images`` extra;
    torchvision for ``crop``). With ``data.workers``, images decode in worker processes.
    """
    how = decoding("image-folder", channels, size, resize, crop, interpolation, mean, std, augment, scale, ratio, flip,
                   training)
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise ZooError(f"image-folder: no folder {folder} (expected {root}/{split}/<class>/<image files>)")
    classes = sorted({p.name for p in Path(root).expanduser().glob("*/*") if p.is_dir()})
    files = [(path, label) for label, name in enumerate(classes) if (folder / name).is_dir()
             for path in sorted((folder / name).iterdir()) if path.suffix.lower() in EXTENSIONS]
    if not files:
        raise ZooError(f"image-folder: no images ({', '.join(EXTENSIONS)}) in the class folders of {folder}")
    if how.preprocess is None and not size:
        how = Decoding(how.mode, shape=_open(files[0][0], how.mode).size)
    return ImageFolder(files, classes, how, {"name": "image-folder", "split": split, "root": root})


class ImageFolder(Dataset):
    """Map-style dataset of (image file, label) pairs, decoded in ``sample``."""

    def __init__(self, files: list[tuple[Path, int]], classes: list[str], decoding: Decoding, info: dict):
        self.files, self.decoding = files, decoding
        try:
            self.info = {**info, "classes": classes, "input": decoding.input}
            decoding.spec  # noqa: B018 -- checks the preprocessing
        except ValueError as exc:
            raise ZooError(f"image-folder: {exc}") from None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.sample(index, None)

    def sample(self, index: int, seed: int | None) -> tuple[Tensor, Tensor]:
        path, label = self.files[index]
        return self.decoding(path, f"image-folder: {path}", seed), torch.tensor(label)


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
