"""How much memory a network or a dataset needs, estimated from sizes alone (no torch).

Cheap enough to run before anything is allocated, so a size that could never fit (a
stage with 10^9 channels, a 99999x99999 input, a dataset resized to 100000 pixels) is
refused with the estimate instead of exhausting the machine; the search also declares
each trial's memory to Ray from it (:func:`training_bytes`).

Counts follow ``cse_nets``' blocks: parameters of every conv, linear and norm layer, and
activations as the elements of every feature map one image produces in a forward pass
(conv, norm and activation outputs, residual sums), which is what training keeps for
the backward pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from space.arch import Arch, Block, attention_width, blocks
from space.inputs import InputShape

__all__ = [
    "DATASET_IMAGES",
    "Footprint",
    "block_cost",
    "check_dataset_fits",
    "check_network_fits",
    "format_bytes",
    "head_cost",
    "network_footprint",
    "physical_memory",
    "stem_cost",
]

FLOAT_BYTES = 4
MODULE_BYTES_PER_BLOCK = 16 << 10  # Python objects of one block's modules, measured ~10 KiB
# Images in the training plus test split of each dataset (search.data makes the synthetic
# one: 2,000 + 500).
DATASET_IMAGES = {"cifar10": 60_000, "cifar100": 60_000, "imagenette": 13_394,
                  "fashion-mnist": 70_000, "synthetic": 2_500}


@dataclass(frozen=True)
class Footprint:
    """Sizes of one network on one input."""

    params: int  # weights, biases and norm parameters
    activations: int  # feature-map elements of one image's forward pass
    blocks: int

    @property
    def weight_bytes(self) -> int:
        return self.params * FLOAT_BYTES + self.blocks * MODULE_BYTES_PER_BLOCK

    @property
    def image_bytes(self) -> int:
        """One image's activations in float32."""
        return self.activations * FLOAT_BYTES


def stem_cost(c_in: int, width: int, pixels: int) -> tuple[int, int]:
    """Parameters and activations of the stem (3x3 conv, norm) on ``pixels`` pixels."""
    return c_in * width * 9 + 2 * width, 3 * width * pixels


def head_cost(channels: int, head: int, head_op: str, act: str, size: int,
              num_classes: int) -> tuple[int, int]:
    """Parameters and activations of the head (1x1 conv to ``head`` channels, norm, pool,
    classifier) on the last stage's ``channels`` x ``size`` x ``size`` output; the stem's
    and the head's PReLU slopes too."""
    groups = channels if head_op == "grouped" else 1
    params = (channels * head // groups + 2 * head + head * num_classes + num_classes
              + (2 if act == "prelu" else 0))
    return params, 3 * head * size * size + head + num_classes


def _btn(block: Block) -> tuple[int, int]:
    c_in, c_out, size = block.c_in, block.c_out, block.input_size
    hidden = c_in * block.stage.t
    out = block.output_size ** 2
    params = c_in * hidden + 9 * hidden + hidden * c_out + 2 * (2 * hidden + c_out)
    activations = 3 * hidden * size * size + 3 * hidden * out + 3 * c_out * out
    if block.stride == 1 and c_in != c_out:  # 1x1 conv shortcut
        params += c_in * c_out + 2 * c_out
        activations += 2 * c_out * out
    return params, activations


def _cse(block: Block) -> tuple[int, int]:
    c_in, c_out, pixels = block.c_in, block.c_out, block.input_size ** 2
    params = c_in * c_out + 9 * c_out + 4 * c_out + 2 + 2 * pixels * attention_width(
        pixels, r=block.stage.r, cap=block.stage.cap)
    activations = 8 * c_out * pixels
    if c_in != c_out:
        params += c_in * c_out + 2 * c_out
        activations += 2 * c_out * pixels
    if block.stride == 2:
        params += 4 * c_out
        activations += c_out * block.output_size ** 2
    return params, activations


def block_cost(block: Block) -> tuple[int, int]:
    """Parameters and one image's activations of one block."""
    return _btn(block) if block.op == "btn" else _cse(block)


def network_footprint(arch: Arch, shape: InputShape) -> Footprint:
    """Parameters and one image's activations of ``arch`` built for ``shape``."""
    params, activations = stem_cost(shape.in_channels, arch.stem, shape.input_size ** 2)
    size = shape.input_size
    for block in blocks(arch, shape.input_size):
        cost = block_cost(block)
        params += cost[0]
        activations += cost[1]
        size = block.output_size
    cost = head_cost(arch.stages[-1].c, arch.head, arch.head_op, arch.act, size,
                     shape.num_classes)
    params += cost[0]
    activations += cost[1]
    return Footprint(params=params, activations=activations,
                     blocks=sum(stage.n for stage in arch.stages))


def physical_memory() -> int:
    """Bytes of RAM on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def format_bytes(count: float) -> str:
    """``1.5 GB``, ``340 MB``: decimal units, as memory figures are quoted."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count / 1e3:.3g} kB"


def check_network_fits(arch: Arch, shape: InputShape, batch: int = 1) -> Footprint:
    """The footprint, or ``ValueError`` naming the estimate when the weights and the
    activations of ``batch`` images alone would exceed this machine's memory."""
    footprint = network_footprint(arch, shape)
    needed = footprint.weight_bytes + batch * footprint.image_bytes
    memory = physical_memory()
    if needed > memory:
        chw = "x".join(map(str, shape.chw))
        images = f"a {chw} input" if batch == 1 else f"a batch of {batch:,} {chw} inputs"
        raise ValueError(
            f"the network for {images} would need about {format_bytes(needed)} (estimate: "
            f"{footprint.params:,} parameters, {footprint.activations:,} activations per "
            f"image, {footprint.blocks:,} blocks), "
            f"more than this machine's {format_bytes(memory)} of memory")
    return footprint


def check_dataset_fits(name: str, shape: InputShape) -> None:
    """``ValueError`` naming the estimate if ``name``'s images at ``shape`` cannot fit."""
    needed = DATASET_IMAGES.get(name, 0) * shape.in_channels * shape.input_size ** 2
    memory = physical_memory()
    if needed > memory:
        raise ValueError(
            f"{name} at {shape.input_size}x{shape.input_size} pixels would take about "
            f"{format_bytes(needed)} (estimate: {DATASET_IMAGES[name]:,} images of "
            f"{'x'.join(map(str, shape.chw))} bytes), more than this machine's "
            f"{format_bytes(memory)} of memory")
