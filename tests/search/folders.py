"""Small image folders drawn with PIL, for image-folder dataset tests and end-to-end runs.

Each class is a coloured shape on noise: a red square, a blue circle, a green triangle
(another class name gets a square, circle or triangle in a colour of its own). Sizes vary
from image to image and every third image is a JPEG, the rest PNG, so a reader meets what
a real folder holds. The shapes are large and their colours distinct, so a small network
learns them in an epoch or two.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASSES", "make_image_folder", "write_image"]

CLASSES = ("blue-circle", "green-triangle", "red-square")  # sorted, as a reader orders them
_LOOKS = {"blue-circle": ("circle", (30, 60, 220)),
          "green-triangle": ("triangle", (30, 190, 40)),
          "red-square": ("square", (220, 30, 30))}


def _look(cls: str) -> tuple[str, tuple[int, ...]]:
    if cls in _LOOKS:
        return _LOOKS[cls]
    draw = np.random.default_rng(zlib.crc32(cls.encode()))  # the same for every run
    return (("square", "circle", "triangle")[int(draw.integers(3))],
            tuple(int(v) for v in draw.integers(0, 256, size=3)))


def write_image(path: Path, cls: str, rng: np.random.Generator, *, grey: bool = False,
                size: tuple[int, int] | None = None) -> Path:
    """One image of class ``cls`` at ``path``; the suffix picks the format. ``size`` is
    (width, height), else drawn between 24 and 72 pixels a side."""
    width, height = size or tuple(int(v) for v in rng.integers(24, 73, size=2))
    noise = rng.normal(128, 30, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(noise, "RGB")
    side = min(width, height)
    extent = int(rng.integers(side // 2, side - 2))  # the shape's bounding square
    x0 = int(rng.integers(0, width - extent + 1))
    y0 = int(rng.integers(0, height - extent + 1))
    box = (x0, y0, x0 + extent - 1, y0 + extent - 1)
    draw, (shape, colour) = ImageDraw.Draw(image), _look(cls)
    if shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "circle":
        draw.ellipse(box, fill=colour)
    else:
        draw.polygon([(x0 + extent // 2, y0), (box[2], box[3]), (x0, box[3])], fill=colour)
    if grey:
        image = image.convert("L")  # the three colours stay distinct brightnesses
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_image_folder(
    root: Path,
    per_class: int | Mapping[str, int] = 24,
    *,
    classes: Sequence[str] = CLASSES,
    grey: bool = False,
    seed: int = 0,
) -> Path:
    """An image folder at ``root``; returns ``root``.

    ``per_class`` as a number gives the flat layout, ``root/<class>/*``; as a mapping of
    split names to counts (``{"train": 24, "test": 6}``, ``"val"`` too) the split layout,
    ``root/<split>/<class>/*``. ``grey`` saves every image greyscale (mode L).
    """
    rng = np.random.default_rng(seed)
    layout = {".": per_class} if isinstance(per_class, int) else dict(per_class)
    for split, count in layout.items():
        for cls in classes:
            for i in range(count):
                suffix = ".jpg" if i % 3 == 2 else ".png"
                write_image(root / split / cls / f"{cls}-{i:03d}{suffix}", cls, rng, grey=grey)
    return root
