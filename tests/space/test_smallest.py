"""The space's smallest network: a point of the space that no draw and no one-field change
beats."""

from __future__ import annotations

import random

import pytest

from cse_nets import build_network, count_parameters
from space import CHOICES, InputShape, arch_from_params, preset_params
from space.footprint import network_footprint
from space.smallest import smallest_arch

SHAPES = [InputShape(1, 16, 10), InputShape(3, 32, 100), InputShape(3, 7, 2)]


def _params(params: dict, shape: InputShape) -> int:
    return network_footprint(arch_from_params(params, shape.input_size), shape).params


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_smallest_network_is_in_the_space_and_counted_as_built(shape: InputShape) -> None:
    arch = smallest_arch(shape)
    assert arch_from_params(preset_params(arch, shape.input_size), shape.input_size) == arch
    assert network_footprint(arch, shape).params == count_parameters(
        build_network(arch, shape))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_no_draw_and_no_single_change_is_smaller(shape: InputShape) -> None:
    arch = smallest_arch(shape)
    fewest = network_footprint(arch, shape).params
    rng = random.Random(0)
    draws = [_params({name: rng.choice(values) for name, values in CHOICES.items()}, shape)
             for _ in range(500)]
    assert fewest < min(draws)
    start = preset_params(arch, shape.input_size)
    for name, values in CHOICES.items():
        for value in values:
            assert _params({**start, name: value}, shape) >= fewest, (name, value)
