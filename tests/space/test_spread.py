"""The size-spread start-up design: one architecture per log-size bin, every prefix spread."""

from __future__ import annotations

import itertools
import math

import pytest

from space import InputShape, arch_from_params, preset
from space.footprint import network_footprint
from space.sample import CHOICES
from space.spread import bin_order, size_spread

SHAPE = InputShape(in_channels=1, input_size=16, num_classes=10)


@pytest.mark.parametrize("count", range(1, 13))
def test_bin_order_is_a_permutation_that_starts_at_both_ends(count: int) -> None:
    order = bin_order(count)
    assert sorted(order) == list(range(count))
    assert order[:2] == [0, count - 1][:count]


def test_design_spans_the_sizes_up_to_the_upper_bound() -> None:
    upper = network_footprint(preset("mobilenetv2"), SHAPE).params
    design = size_spread(10, shape=SHAPE, upper=upper, seed=0, draws=1024)
    assert len(design) == 10
    sizes = []
    for params in design:
        assert set(params) == set(CHOICES)
        sizes.append(network_footprint(arch_from_params(params, 16), SHAPE).params)
    # In bin order: the first is the smallest, the second the largest, all under the bound.
    assert sizes[0] == min(sizes) and sizes[1] == max(sizes) <= upper
    # Log sizes sorted fall in consecutive bins: no two more than two bin widths apart,
    # where uniform draws would crowd around the median (~1M here).
    logs = sorted(math.log(s) for s in sizes)
    width = (math.log(upper) - logs[0]) / 10
    assert all(b - a <= 2 * width for a, b in itertools.pairwise(logs))
    assert sum(s < 300_000 for s in sizes) >= 3


def test_same_seed_same_design_other_seed_other_design() -> None:
    kwargs = {"shape": SHAPE, "upper": 2_000_000, "draws": 256}
    assert size_spread(4, seed=1, **kwargs) == size_spread(4, seed=1, **kwargs)
    assert size_spread(4, seed=1, **kwargs) != size_spread(4, seed=2, **kwargs)
