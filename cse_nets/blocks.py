"""The two block types a stage can use: BTN (inverted residual) and CSE."""

from __future__ import annotations

import torch
from torch import nn

from space.arch import attention_width

__all__ = ["BTNBlock", "CSEBlock", "SpatialAttention", "attention_width"]


def _conv_bn(c_in: int, c_out: int, kernel: int, *, stride: int = 1, groups: int = 1,
             padding: int = 0) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups,
                  bias=False),
        nn.BatchNorm2d(c_out),
    ]


class BTNBlock(nn.Module):
    """MobileNetV2's inverted residual, in its common CIFAR form.

    The expansion conv is kept even at ``t == 1``, and a stride-1 block with a width
    change gets a 1x1 conv shortcut instead of losing its residual.
    """

    def __init__(self, *, c_in: int, c_out: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = c_in * t
        self.body = nn.Sequential(
            # pw
            *_conv_bn(c_in, hidden, 1),
            nn.ReLU6(inplace=True),
            # dw
            *_conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, padding=1),
            nn.ReLU6(inplace=True),
            # pw-linear
            *_conv_bn(hidden, c_out, 1),
        )
        self.use_residual = stride == 1
        self.shortcut = (
            nn.Sequential(*_conv_bn(c_in, c_out, 1))
            if self.use_residual and c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.use_residual:
            out = out + self.shortcut(x)
        return out


class SpatialAttention(nn.Module):
    """Squeeze over channels, excite over pixels: one weight per pixel from a small MLP.

    Its parameters depend on the resolution (``2 * H*W * m``), never on the channels.
    """

    def __init__(self, *, size: int, r: int, cap: int) -> None:
        super().__init__()
        pixels = size * size
        hidden = attention_width(pixels, r=r, cap=cap)
        self.mlp = nn.Sequential(
            nn.Linear(pixels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, pixels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        weights = self.mlp(x.mean(dim=1).flatten(1))
        return x * weights.view(batch, 1, height, width)


class CSEBlock(nn.Module):
    """The paper's channel-wise squeeze-and-excitation block (replaces BTN's projection).

    The attention runs at the block's input resolution ``size``; a stride-2 block then
    halves it with a 2x2 depthwise conv, so the residual is always added before that.
    """

    def __init__(self, *, c_in: int, c_out: int, stride: int, size: int, r: int,
                 cap: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            # pw
            *_conv_bn(c_in, c_out, 1),
            nn.PReLU(),
            # dw
            *_conv_bn(c_out, c_out, 3, groups=c_out, padding=1),
            nn.PReLU(),
            SpatialAttention(size=size, r=r, cap=cap),
        )
        self.shortcut = nn.Sequential(*_conv_bn(c_in, c_out, 1)) if c_in != c_out else None
        self.downsample = (
            nn.Conv2d(c_out, c_out, 2, stride=2, groups=c_out, bias=False)
            if stride == 2
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.downsample(self.body(x) + residual)
