"""count_macs (layer hooks) agrees with torch.utils.flop_counter on every kind of network."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cse_nets import build_network, count_macs
from cse_nets.profile import _module_macs
from space import PRESETS, dataset_shape, preset
from space.sample import CHOICES, arch_from_params


def _flop_counter(network: torch.nn.Module, chw: tuple[int, int, int]) -> dict[str, int]:
    network.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, *chw))
    return {name: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()}


@pytest.mark.parametrize("name", [*PRESETS, "sample-0", "sample-1", "sample-2"])
def test_macs_match_the_flop_counter_per_module(name: str) -> None:
    shape = dataset_shape("cifar10")
    if name in PRESETS:
        arch = preset(name)
    else:
        rng = random.Random(name)
        arch = arch_from_params({k: rng.choice(c) for k, c in CHOICES.items()}, 32)
    network = build_network(arch, shape)
    reference = _flop_counter(network, shape.chw)
    ours = _module_macs(network, shape.chw)
    assert count_macs(network, shape.chw) == reference["Global"]
    assert {k: ours[k] for k in reference} == reference  # every path it reports, ours too
