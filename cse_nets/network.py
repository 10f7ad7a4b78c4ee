"""``build_network``: an :class:`space.Arch` becomes a PyTorch module."""

from __future__ import annotations

import torch
from torch import nn

from cse_nets.blocks import BTNBlock, CSEBlock
from space import Arch, InputShape, blocks
from space.footprint import check_network_fits

__all__ = ["CSENet", "build_block", "build_head", "build_network", "build_stem"]


def _activation(name: str) -> nn.Module:
    # PReLU with one shared slope, as the paper's models use: it adds a single parameter.
    return nn.PReLU() if name == "prelu" else nn.ReLU6(inplace=True)


class CSENet(nn.Module):
    """Stem, one ``nn.Sequential`` per stage (so profiles can name them), head, classifier."""

    def __init__(self, *, stem: nn.Module, stages: nn.ModuleList, head: nn.Module,
                 classifier: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.stages = stages
        self.head = head
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        x = self.pool(self.head(x)).flatten(1)
        return self.classifier(x)


def build_network(arch: Arch, shape: InputShape, *, seed: int | None = None) -> CSENet:
    """The network for ``arch`` on ``shape``'s square images and classes.

    A pure function of its arguments: the CSE attention layers are sized from the
    resolutions ``space.blocks`` gives, so the input size is part of the model.
    With ``seed``, the initial weights are drawn from it, leaving the caller's global
    random state untouched. ``ValueError`` (from a size estimate, before anything is
    allocated) if the network could not fit in this machine's memory.
    """
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(arch, shape)
    check_network_fits(arch, shape)

    stem = build_stem(shape.in_channels, arch.stem, act=arch.act)
    stage_blocks: list[list[nn.Module]] = [[] for _ in arch.stages]
    for block in blocks(arch, shape.input_size):
        stage_blocks[block.stage_index].append(build_block(
            block.op, c_in=block.c_in, c_out=block.c_out, stride=block.stride,
            size=block.input_size, t=block.stage.t, r=block.stage.r, cap=block.stage.cap))
    stages = nn.ModuleList(nn.Sequential(*modules) for modules in stage_blocks)

    head = build_head(arch.stages[-1].c, arch.head, head_op=arch.head_op, act=arch.act)
    return CSENet(stem=stem, stages=stages, head=head,
                  classifier=nn.Linear(arch.head, shape.num_classes))


# The pieces below are what build_network assembles; they are public so that one block can
# be built (and timed, see cse_nets.latency.table) exactly as the network builds it.


def build_stem(in_channels: int, width: int, *, act: str) -> nn.Sequential:
    """3x3 convolution (stride 1, keeps the size), BN, the architecture's activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        _activation(act),
    )


def build_block(op: str, *, c_in: int, c_out: int, stride: int, size: int, t: int, r: int,
                cap: int) -> nn.Module:
    """One block of a stage; ``size`` is its input side length (CSE attention is sized by
    it), and the fields the op does not use (``t`` for CSE, ``r``/``cap`` for BTN) are
    ignored."""
    if op == "btn":
        return BTNBlock(c_in=c_in, c_out=c_out, stride=stride, t=t)
    if op == "cse":
        return CSEBlock(c_in=c_in, c_out=c_out, stride=stride, size=size, r=r, cap=cap)
    raise ValueError(f"unknown block op {op!r}; choose one of btn, cse")


def build_head(c_in: int, width: int, *, head_op: str, act: str) -> nn.Sequential:
    """1x1 convolution to ``width`` channels (grouped: one group per input channel), BN,
    activation; the network then pools and applies its linear classifier."""
    groups = c_in if head_op == "grouped" else 1
    return nn.Sequential(
        nn.Conv2d(c_in, width, 1, groups=groups, bias=False),
        nn.BatchNorm2d(width),
        _activation(act),
    )
