"""Batched augmentation on the training device: whole batches are cropped, flipped and normalised.

Images stay uint8 tensors on the device. A batch is cropped and flipped with one gather and
normalised in float, as airbench does for CIFAR-10, instead of per-image PIL work in
DataLoader workers. Random numbers come from a ``torch.Generator`` on the images' device,
so a seed fixes every crop, flip and shuffle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from space.checks import non_negative_int

__all__ = ["Augmentation", "Normalize", "random_crop_flip", "shuffled_batches"]


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation: torchvision's ``RandomCrop(size, padding=pad)`` and flip."""

    pad: int = 0  # pixels of zero padding on every side before a random crop back to size
    flip: bool = False  # mirror left-right with probability 1/2

    def __post_init__(self) -> None:
        non_negative_int(self.pad, "augmentation: pad")


def random_crop_flip(images: Tensor, aug: Augmentation, generator: torch.Generator) -> Tensor:
    """A random crop (after zero padding) and flip of every image in ``images`` (N, C, H, W).

    The result has the input's shape, dtype and device; image ``i`` of the output comes
    from image ``i`` of the input, so labels stay valid.
    """
    if aug.pad == 0 and not aug.flip:
        return images
    n, c, h, w = images.shape
    device = images.device
    span = 2 * aug.pad + 1
    dy = torch.randint(span, (n, 1), generator=generator, device=device)
    dx = torch.randint(span, (n, 1), generator=generator, device=device)
    rows = dy + torch.arange(h, device=device)  # (N, H) rows of the padded image to keep
    cols = torch.arange(w, device=device).expand(n, w)
    if aug.flip:
        flipped = torch.rand((n, 1), generator=generator, device=device) < 0.5
        cols = torch.where(flipped, w - 1 - cols, cols)
    cols = dx + cols  # (N, W): the flip reads the crop window's columns backwards
    padded = F.pad(images, (aug.pad,) * 4) if aug.pad else images
    # One gather does crop and flip for the whole batch: out[i, ch, y, x] =
    # padded[i, ch, rows[i, y], cols[i, x]].
    return padded[
        torch.arange(n, device=device)[:, None, None, None],
        torch.arange(c, device=device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class Normalize:
    """uint8 images -> float ``(x / 255 - mean) / std`` per channel, in channels_last.

    channels_last because the networks' convolutions run faster in it (README, "Measured").
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device) -> None:
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        # Precomputed once so a batch costs one multiply-add.
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, images: Tensor) -> Tensor:
        out = torch.addcmul(self.shift, images.float(), self.scale)
        return out.contiguous(memory_format=torch.channels_last)


def shuffled_batches(
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    aug: Augmentation,
    generator: torch.Generator,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of augmented uint8 ``(images, labels)`` batches in a random order.

    Only full batches are served (a last, smaller one would give BatchNorm a noisy or even
    single-image batch); when there are fewer images than ``batch_size``, one batch of all.
    """
    count = len(labels)
    order = torch.randperm(count, generator=generator, device=images.device)
    steps = max(1, count // batch_size)
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        yield random_crop_flip(images[index], aug, generator), labels[index]
