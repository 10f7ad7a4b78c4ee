"""What a network costs: trainable parameters and multiply-accumulates, per stage.

MACs are those of the convolutions and linear layers, the only layers here that
multiply-accumulate, read off their output shapes in one forward pass (the same figures as
``torch.utils.flop_counter``, tested, without its cost: it imports TorchDynamo, seconds per
process, and traces every operation); elementwise work such as BatchNorm, activations and
the attention's rescale is not counted, as is usual for MobileNet-style MAC figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cse_nets.blocks import SpatialAttention
from cse_nets.network import build_network
from space import Arch, InputShape, blocks

__all__ = ["StageProfile", "count_macs", "count_parameters", "profile_network"]


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters, the figure the paper reports."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _pointwise_parameters(module: nn.Module) -> int:
    return sum(
        count_parameters(m)
        for m in module.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    )


def _attention_parameters(module: nn.Module) -> int:
    return sum(count_parameters(m) for m in module.modules() if isinstance(m, SpatialAttention))


def _module_macs(module: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs of one forward pass on a single image: ``"Global"``, and per module path
    (``"<class of module>.stages.0"`` and every other ancestor of a counted layer)."""
    root = type(module).__name__
    macs: dict[str, int] = defaultdict(int)

    def counter(path: str):
        ancestors = ["Global", root] + [f"{root}.{'.'.join(path.split('.')[:depth])}"
                                        for depth in range(1, path.count(".") + 2)]

        def count(layer: nn.Module, _inputs: object, output: Tensor) -> None:
            if isinstance(layer, nn.Conv2d):
                per_output = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            else:
                per_output = layer.in_features
            for name in ancestors:
                macs[name] += output.numel() * per_output
        return count

    hooks = [layer.register_forward_hook(counter(path))
             for path, layer in module.named_modules() if isinstance(layer, nn.Conv2d | nn.Linear)]
    was_training = module.training
    module.eval()
    try:
        device = next(module.parameters()).device
        with torch.no_grad():
            module(torch.zeros(1, *input_shape, device=device))
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return dict(macs)


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates for one image of shape ``(C, H, W)``."""
    return _module_macs(module, input_shape)["Global"]


@dataclass(frozen=True)
class StageProfile:
    """One row of a network's cost table (stem, each stage, head, classifier)."""

    name: str
    op: str
    in_size: int
    out_size: int
    in_channels: int
    out_channels: int
    params: int
    pointwise_params: int  # in 1x1 convolutions, the part CSE blocks are meant to shrink
    attention_params: int  # in CSE spatial attention: depends on resolution, not channels
    macs: int

    @property
    def other_params(self) -> int:
        return self.params - self.pointwise_params - self.attention_params


def profile_network(arch: Arch, shape: InputShape) -> list[StageProfile]:
    """The per-stage cost table of ``build_network(arch, shape)``; rows sum to the totals."""
    network = build_network(arch, shape)
    macs = _module_macs(network, shape.chw)
    in_channels, input_size, num_classes = shape.in_channels, shape.input_size, shape.num_classes
    root = type(network).__name__

    def row(name: str, op: str, module: nn.Module, key: str, sizes: tuple[int, int],
            channels: tuple[int, int]) -> StageProfile:
        return StageProfile(
            name=name, op=op, in_size=sizes[0], out_size=sizes[1],
            in_channels=channels[0], out_channels=channels[1],
            params=count_parameters(module), pointwise_params=_pointwise_parameters(module),
            attention_params=_attention_parameters(module), macs=macs.get(f"{root}.{key}", 0),
        )

    rows = [row("stem", "conv3x3", network.stem, "stem", (input_size, input_size),
                (in_channels, arch.stem))]
    channels = arch.stem
    size = input_size
    for block in blocks(arch, input_size):
        if block.last_in_stage:  # one row per stage, from its input to its last block's output
            i = block.stage_index
            rows.append(row(f"stage{i + 1}", str(block.stage), network.stages[i], f"stages.{i}",
                            (size, block.output_size), (channels, block.c_out)))
            channels, size = block.c_out, block.output_size
    rows.append(row("head", f"conv1x1{' grouped' if arch.head_op == 'grouped' else ''}",
                    network.head, "head", (size, size), (channels, arch.head)))
    rows.append(row("classifier", "linear", network.classifier, "classifier", (1, 1),
                    (arch.head, num_classes)))
    return rows
