"""Resizing decoded images: whole uint8 batches, and one PIL image fitted to a square."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["fit_square", "resize_images"]


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
