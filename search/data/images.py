"""Decoded images made uint8: whole batches resized, one PIL image brought to 8 bits and
fitted to a square."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["GREY_RANGES", "PixelRangeError", "fit_square", "resize_images", "to_8bit"]

# Greyscale modes wider than 8 bits, each with the value that is white. Pillow's
# convert("L") clips these at 255 instead of scaling them, so a 16-bit scan becomes a
# constant white image and a float image in [0, 1] only 0 and 1. "I" (32-bit) is how
# Pillow opens some 16-bit files, so it is read as 16-bit data too.
GREY_RANGES: dict[str, float] = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535,
                                 "I;16N": 65535, "I": 65535, "F": 1.0}


class PixelRangeError(ValueError):
    """An image with values outside its mode's range (:data:`GREY_RANGES`): no 8-bit image
    stands for it without guessing the scale."""


def resize_images(images: Tensor, size: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` images resized to ``size`` x ``size`` (bilinear, antialiased)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    # In chunks: CIFAR as float at 64x64 would take 2.4 GB at once.
    chunks = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
        .round_().clamp_(0, 255).to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(chunks)


def fit_square(image: Image.Image, size: int) -> Tensor:
    """A loaded L or RGB image as uint8 ``(C, size, size)``: the shorter side resized to
    ``size`` (bilinear, antialiased), then the centre cropped."""
    width, height = image.size
    short = min(width, height)
    # The longer side truncated, as torchvision's Resize(size) does.
    resized = (size, int(size * height / short)) if width == short else \
        (int(size * width / short), size)
    if resized != image.size:
        image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (round((side - size) / 2) for side in resized)  # as torchvision's CenterCrop
    pixels = torch.from_numpy(np.array(image.crop((left, top, left + size, top + size))))
    return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)


def to_8bit(image: Image.Image, mode: str) -> Image.Image:
    """An opened image in ``mode`` (L or RGB). Greyscale of more than 8 bits is scaled from
    its mode's range (:data:`GREY_RANGES`: 0..65535, or [0, 1] for floats) to 0..255;
    :class:`PixelRangeError` if a value lies outside that range or is NaN."""
    white = GREY_RANGES.get(image.mode)
    if white is None:
        return image.convert(mode)
    pixels = np.asarray(image, dtype=np.float32)
    low, high = pixels.min(), pixels.max()
    if not (low >= 0 and high <= white):  # NaN fails both
        raise PixelRangeError(f"{image.mode} image with values from {low:g} to {high:g}, "
                              f"outside its range 0..{white:g}")
    grey = np.rint(pixels * np.float32(255 / white)).astype(np.uint8)
    return Image.fromarray(grey, "L").convert(mode)
