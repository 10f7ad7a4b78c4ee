"""The input each known dataset gives a network: channels, side length, classes.

Kept here, torch-free, because both the network summary and the data loaders need it.
"""

from __future__ import annotations

from dataclasses import dataclass

from space.arch import lookup
from space.checks import positive_int

__all__ = ["DATASET_SHAPES", "InputShape", "dataset_shape", "parse_input_shape"]


@dataclass(frozen=True)
class InputShape:
    """What a network is built for: ``in_channels`` x ``input_size`` x ``input_size`` images
    and ``num_classes`` outputs."""

    in_channels: int
    input_size: int  # square images: side length in pixels
    num_classes: int

    def __post_init__(self) -> None:
        for name in ("in_channels", "input_size", "num_classes"):
            positive_int(getattr(self, name), name)

    @property
    def chw(self) -> tuple[int, int, int]:
        """One image's tensor shape ``(C, H, W)``."""
        return (self.in_channels, self.input_size, self.input_size)


DATASET_SHAPES: dict[str, InputShape] = {
    "cifar10": InputShape(3, 32, 10),
    "cifar100": InputShape(3, 32, 100),
    "imagenette": InputShape(3, 64, 10),  # resized once from the 160px release
    "fashion-mnist": InputShape(1, 28, 10),
    "synthetic": InputShape(3, 32, 10),
}


def dataset_shape(name: str) -> InputShape:
    return lookup(DATASET_SHAPES, name, "dataset")


def parse_input_shape(text: str, num_classes: int) -> InputShape:
    """``"3x32x32"`` (channels x height x width, square only) and a class count."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"input shape must look like 3x32x32, got {text!r}")
    channels, height, width = map(int, parts)
    if height != width:
        raise ValueError(f"input must be square, got {height}x{width}")
    return InputShape(channels, height, positive_int(num_classes, "classes"))
