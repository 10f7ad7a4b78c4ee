"""``build_network``: an :class:`space.Arch` becomes a PyTorch module."""

from __future__ import annotations

import torch
from torch import nn

from cse_nets.blocks import BTNBlock, CSEBlock
from space import Arch, InputShape, stage_resolutions

__all__ = ["CSENet", "build_network"]


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
    resolutions ``space.stage_resolutions`` gives, so the input size is part of the model.
    With ``seed``, the initial weights are drawn from it, leaving the caller's global
    random state untouched.
    """
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(arch, shape)
    resolutions = stage_resolutions(arch, shape.input_size)

    stem = nn.Sequential(
        nn.Conv2d(shape.in_channels, arch.stem, 3, padding=1, bias=False),
        nn.BatchNorm2d(arch.stem),
        _activation(arch.act),
    )
    stages = nn.ModuleList()
    c_in = arch.stem
    for stage, sizes in zip(arch.stages, resolutions, strict=True):
        blocks: list[nn.Module] = []
        for i, size in enumerate(sizes):
            stride = stage.s if i == 0 else 1
            if stage.op == "btn":
                blocks.append(BTNBlock(c_in=c_in, c_out=stage.c, stride=stride, t=stage.t))
            else:
                blocks.append(CSEBlock(c_in=c_in, c_out=stage.c, stride=stride, size=size,
                                       r=stage.r, cap=stage.cap))
            c_in = stage.c
        stages.append(nn.Sequential(*blocks))

    groups = c_in if arch.head_op == "grouped" else 1
    head = nn.Sequential(
        nn.Conv2d(c_in, arch.head, 1, groups=groups, bias=False),
        nn.BatchNorm2d(arch.head),
        _activation(arch.act),
    )
    return CSENet(stem=stem, stages=stages, head=head,
                  classifier=nn.Linear(arch.head, shape.num_classes))
