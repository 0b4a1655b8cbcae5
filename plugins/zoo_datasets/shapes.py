"""Draw an image folder of coloured shapes on cluttered backgrounds (ROOT/{train,val,test}/{circle,
square,triangle}/*.png): photos of a small task for the timm fine-tune recipe, since no real photos
can be downloaded here. Seeded: the same arguments draw the same files.

    python -m zoo_datasets.shapes shapes/ --per-class 60 --size 160
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle")
SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


def draw(root: Path, per_class: int, size: int, seed: int = 0) -> int:
    """Write ``per_class`` images of each class, ``size`` pixels square, split 70/15/15; the count written."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    written = 0
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            split = "train" if i < per_class * SPLITS["train"] else "val" if i < per_class * (1 - SPLITS["test"]) \
                else "test"
            background = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            image = Image.fromarray(background).resize((size, size), Image.BICUBIC)
            pen = ImageDraw.Draw(image)
            for _ in range(3):  # clutter: thin lines
                pen.line([tuple(rng.integers(0, size, 2).tolist()) for _ in range(2)],
                         fill=tuple(rng.integers(0, 256, 3).tolist()), width=2)
            radius = rng.uniform(0.18, 0.4) * size
            cx, cy = rng.uniform(radius, size - radius, 2)
            colour = tuple(rng.integers(0, 256, 3).tolist())
            if name == "circle":
                pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
            elif name == "square":
                pen.rectangle([cx - radius * 0.8, cy - radius * 0.8, cx + radius * 0.8, cy + radius * 0.8], fill=colour)
            else:
                pen.polygon([(cx, cy - radius), (cx - radius, cy + radius * 0.8), (cx + radius, cy + radius * 0.8)],
                            fill=colour)
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{name}-{i:04d}.png")
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo_datasets.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the folder to write (ROOT/train/circle/...)")
    parser.add_argument("--per-class", type=int, default=60, help="images of each class (default 60)")
    parser.add_argument("--size", type=int, default=160, help="pixels, square (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.per_class < 7 or not 16 <= args.size <= 4096:
        parser.error("--per-class must be at least 7 (every split gets one) and --size 16 to 4096")
    count = draw(args.root, args.per_class, args.size, args.seed)
    print(f"{count} images in {args.root}/{{train,val,test}}/{{{','.join(CLASSES)}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
