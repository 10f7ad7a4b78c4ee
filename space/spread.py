"""Architectures spread evenly over log(parameter count): a start-up design for a search.

Uniform draws over the space's choices concentrate where most combinations are: at 16x16
Fashion-MNIST half of them have over 1M parameters and 1% under 200k, so a random
start-up rarely shows a sampler the small end of the front. This design splits
``[smallest of many draws, upper]`` into equal log-width bins and takes one draw from each,
so the start-up sees every size the hypervolume rewards.
"""

from __future__ import annotations

import math
import random
from typing import Any

from space.footprint import network_footprint
from space.inputs import InputShape
from space.sample import CHOICES, arch_from_params

__all__ = ["bin_order", "size_spread"]

DRAWS = 4096  # ~1 s of decoding and counting; every bin of 10 then holds some draws


def bin_order(count: int) -> list[int]:
    """Bins ``0..count-1`` ordered so that every prefix is spread out: both ends first, then
    the bisections between them (0, 9, 4, 2, 6, ... for 10). A start-up cut short, or
    resumed part-way, has still sampled across the sizes."""
    if count <= 2:
        return list(range(count))
    order = [0, count - 1]
    gaps = [(0, count - 1)]
    while gaps:
        wider = []
        for low, high in gaps:
            if high - low > 1:
                middle = (low + high) // 2
                order.append(middle)
                wider += [(low, middle), (middle, high)]
        gaps = wider
    return order


def size_spread(count: int, *, shape: InputShape, upper: int, seed: int,
                draws: int = DRAWS) -> list[dict[str, Any]]:
    """``count`` params dicts of the space (``CHOICES`` keys), one per equal log-width bin
    of parameter count on ``shape`` between the smallest of ``draws`` uniform draws and
    ``upper``, in :func:`bin_order`. A bin no draw fell in takes the draw nearest its
    centre."""
    rng = random.Random(seed)
    drawn = []
    for _ in range(draws):
        params = {name: rng.choice(choices) for name, choices in CHOICES.items()}
        size = network_footprint(arch_from_params(params, shape.input_size), shape).params
        drawn.append((math.log(size), params))
    low = min(size for size, _ in drawn)
    high = max(math.log(upper), low)
    width = (high - low) / count
    design = []
    for index in bin_order(count):
        start = low + index * width
        inside = [params for size, params in drawn
                  if start <= size <= start + width]
        if inside:
            design.append(rng.choice(inside))
        else:
            centre = start + width / 2
            design.append(min(drawn, key=lambda d: abs(d[0] - centre))[1])
    return design
