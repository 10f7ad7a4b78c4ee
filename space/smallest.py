"""The smallest network of the space on an input shape, found exactly.

``--max-params`` below its parameter count leaves a search nothing to train; it is refused
up front rather than discovered after a hundred proposals. Uniform draws cannot find it
(at 16x16 Fashion-MNIST 1% of them fall under 200k parameters), and the space holds
~6x10^18 distinct architectures, but a stage's cost depends only on what enters it
(channels, side length, halvings so far, which force strides:
:func:`space.sample.decoded_stage`), so a dynamic programme over stages, one state per
such triple, visits every choice once per state: 16,416 stage costs at 16x16, ~0.2 s.
"""

from __future__ import annotations

import itertools
from typing import Any

from space.arch import Arch, Stage, block_output_size, stage_blocks
from space.footprint import block_cost, head_cost, stem_cost
from space.inputs import InputShape
from space.sample import CHOICES, STAGE_FIELDS, UNUSED_FIELDS, WIDTHS, decoded_stage

__all__ = ["smallest_arch"]

# (channels, side length, halvings) entering a stage -> (parameters so far, stem, stages)
_States = dict[tuple[int, int, int], tuple[int, int, tuple[Stage, ...]]]


def _stage_rows(index: int) -> list[dict[str, Any]]:
    """Every distinct sampled row of stage ``index`` (a BTN ignores r and cap, a CSE t)."""
    choices = {field: CHOICES[f"stage{index}.{field}"] for field in STAGE_FIELDS}
    rows = []
    for values in itertools.product(*choices.values()):
        row = dict(zip(STAGE_FIELDS, values, strict=True))
        if all(row[field] == choices[field][0] for field in UNUSED_FIELDS[row["op"]]):
            rows.append(row)
    return rows


def smallest_arch(shape: InputShape) -> Arch:
    """The architecture of the space with the fewest parameters on ``shape`` (the first
    found of equals)."""
    states: _States = {
        (stem, shape.input_size, 0): (
            stem_cost(shape.in_channels, stem, shape.input_size ** 2)[0], stem, ())
        for stem in CHOICES["stem"]}
    for index in range(len(WIDTHS)):
        rows = _stage_rows(index)
        after: _States = {}
        for (c_in, size, halvings), (params, stem, stages) in states.items():
            for row in rows:
                stage = decoded_stage(index, row, size, halvings)
                total = params + sum(block_cost(block)[0]
                                     for block in stage_blocks(index, stage, c_in, size))
                key = (stage.c, block_output_size(stage.op, stage.s, size),
                       halvings + (stage.s == 2))
                if key not in after or total < after[key][0]:
                    after[key] = (total, stem, (*stages, stage))
        states = after
    best: tuple[int, Arch] | None = None
    for (channels, size, _), (params, stem, stages) in states.items():
        for ratio, head_op, act in itertools.product(CHOICES["head_ratio"], CHOICES["head_op"],
                                                     CHOICES["act"]):
            total = params + head_cost(channels, ratio * channels, head_op, act, size,
                                       shape.num_classes)[0]
            if best is None or total < best[0]:
                best = (total, Arch(stages=stages, stem=stem, head=ratio * channels,
                                    head_op=head_op, act=act))
    assert best is not None  # every stage has choices
    return best[1]
