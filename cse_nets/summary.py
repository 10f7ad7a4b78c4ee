"""python -m cse_nets.summary: a network's per-stage cost table.

    python -m cse_nets.summary --arch paper-mix --dataset cifar10
    python -m cse_nets.summary --arch my_arch.json --input 3x32x32 --classes 10
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cse_nets.cli import (
    OneLineParser,
    add_network_arguments,
    exits_on_bad_input,
    network_from_args,
)
from cse_nets.profile import StageProfile, profile_network
from space import Arch, InputShape

__all__ = ["format_profile", "main"]

_COLUMNS = ("stage", "op", "resolution", "channels", "params", "1x1 share", "attention",
            "MMACs")


def format_profile(arch: Arch, shape: InputShape) -> str:
    """The table ``main`` prints: one row per stage, then the totals."""
    rows = profile_network(arch, shape)

    def cells(name: str, op: str, resolution: str, channels: str, params: int,
              pointwise: int, attention: int, macs: int) -> list[str]:
        share = f"{pointwise / params:.0%}" if params else "-"
        return [name, op, resolution, channels, f"{params:,}", share, f"{attention:,}",
                f"{macs / 1e6:.2f}"]

    def stage_cells(r: StageProfile) -> list[str]:
        return cells(r.name, r.op, f"{r.in_size}->{r.out_size}",
                     f"{r.in_channels}->{r.out_channels}", r.params, r.pointwise_params,
                     r.attention_params, r.macs)

    table = [list(_COLUMNS), *map(stage_cells, rows)]
    table.append(cells("total", "", "", "", sum(r.params for r in rows),
                       sum(r.pointwise_params for r in rows),
                       sum(r.attention_params for r in rows), sum(r.macs for r in rows)))
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i < 4 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    header = (f"{arch}\ninput {shape.in_channels}x{shape.input_size}x{shape.input_size}, "
              f"{shape.num_classes} classes")
    return "\n".join([header, *lines])


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m cse_nets.summary",
                                     description=__doc__.splitlines()[0])
    add_network_arguments(parser)
    print(format_profile(*network_from_args(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
