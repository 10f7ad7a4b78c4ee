"""python -m cse_nets.latency: a network's latency predicted from the block table, per stage,
next to its measured whole-network latency.

    python -m cse_nets.latency --arch paper-mix --dataset cifar10 --target cpu-onnxruntime
    python -m cse_nets.latency --arch my_arch.json --input 3x32x32 --classes 10 --compare-ops
    python -m cse_nets.latency --arch paper-mix --dataset cifar10 --corrected

The measurement protocol is :mod:`cse_nets.latency.timing`'s, the targets
:mod:`cse_nets.latency.measure`'s and the table :mod:`cse_nets.latency.table`'s; this
module is the command line.
"""

from __future__ import annotations

from collections.abc import Sequence

from cse_nets.cli import (
    OneLineParser,
    add_network_arguments,
    exits_on_bad_input,
    network_from_args,
    positive_int_arg,
)
from cse_nets.latency.correction import correction_for, predict_corrected
from cse_nets.latency.measure import (
    CUDA_BATCHES,
    DEFAULT_TARGET,
    TARGETS,
    check_target,
    measure_network,
)
from cse_nets.latency.table import (
    LatencyTable,
    OpComparison,
    Prediction,
    compare_ops,
    default_table_dir,
    predict_latency,
)
from cse_nets.latency.timing import Timing
from space import Arch, InputShape
from space.footprint import check_network_fits

__all__ = ["format_comparison", "format_prediction", "main"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _table(rows: list[list[str]], left: int) -> list[str]:
    """Columns padded to width: the first ``left`` left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_prediction(prediction: Prediction, measured: Timing | None,
                      corrected_s: float | None = None) -> str:
    """Per stem/stage/head: blocks and predicted ms; then the total, the corrected total
    when given and, when given, the measured whole network and the predictions' errors."""
    counts: dict[str, int] = {}
    for part in prediction.parts:
        counts[part.part] = counts.get(part.part, 0) + 1
    rows = [["part", "blocks", "predicted ms"]]
    rows += [[name, str(counts[name]), _ms(seconds)]
             for name, seconds in prediction.by_part().items()]
    rows.append(["call overhead", "", _ms(prediction.overhead_s)])
    rows.append(["total (table)", str(len(prediction.parts)), _ms(prediction.total_s)])
    if corrected_s is not None:
        rows.append(["total (corrected)", "", _ms(corrected_s)])
    lines = _table(rows, left=1)
    if measured is not None:
        error = prediction.total_s / measured.median_s - 1
        lines.append(f"measured whole network: {_ms(measured.median_s)} ms (interquartile "
                     f"spread {_ms(measured.spread_s)} ms, best round {_ms(measured.best_s)} "
                     f"ms, {measured.runs} runs); table error {error:+.1%}"
                     + ("" if corrected_s is None else
                        f", corrected error {corrected_s / measured.median_s - 1:+.1%}"))
    return "\n".join(lines)


def format_comparison(rows: list[OpComparison]) -> str:
    """Per stage: BTN vs CSE table latency at the same shapes, and which is faster."""
    table = [["stage", "used", "resolution", "channels", "stride", "blocks", "BTN ms", "CSE ms",
              "CSE/BTN"]]
    for row in rows:
        ratio = f"{row.cse_s / row.btn_s:.2f}" if row.btn_s > 0 else "-"
        table.append([row.part, row.op, f"{row.size}x{row.size}", f"{row.c_in}->{row.c_out}",
                      str(row.stride), str(row.blocks), _ms(row.btn_s), _ms(row.cse_s), ratio])
    return "\n".join(_table(table, left=2))


def _report(arch: Arch, shape: InputShape, target: str, batch: int, args) -> None:
    table = LatencyTable(target, batch=batch, directory=args.cache_dir)
    prediction = predict_latency(arch, shape, target, table=table, batch=batch)
    corrected = None
    if args.corrected:
        correction = correction_for(table, shape, progress=print)
        corrected = predict_corrected(arch, shape, target, table=table, batch=batch,
                                      correction=correction).total_s
    measured = None if args.no_measure else measure_network(arch, shape, target, batch=batch)
    print(f"{target}, batch {batch} (table: {table.path}, {table.measured} entries "
          f"measured now)")
    print(format_prediction(prediction, measured, corrected))
    if args.compare_ops:
        print(f"\nCSE vs BTN blocks per stage position ({target}, batch {batch}; BTN t=6 and "
              f"CSE r=16, cap=8 where the stage uses the other op)")
        print(format_comparison(compare_ops(arch, shape, target, table=table, batch=batch)))


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m cse_nets.latency",
                           description=__doc__.splitlines()[0])
    add_network_arguments(parser)
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help=f"one of {', '.join(TARGETS)} (default %(default)s)")
    parser.add_argument("--batch", type=positive_int_arg,
                        help="batch size (default 1; cuda: both "
                        f"{' and '.join(map(str, CUDA_BATCHES))})")
    parser.add_argument("--cache-dir", default=None,
                        help=f"latency table directory (default {default_table_dir()})")
    parser.add_argument("--compare-ops", action="store_true",
                        help="also print CSE vs BTN block latency per stage position")
    parser.add_argument("--corrected", action="store_true",
                        help="also print the total corrected for whole-network effects "
                             "(fitted once per machine, target and input on measured "
                             "networks: minutes the first time)")
    parser.add_argument("--no-measure", action="store_true",
                        help="print the table's prediction only, skip the whole-network run")
    args = parser.parse_args(argv)
    target = check_target(args.target)
    arch, shape = network_from_args(args)
    batches = [args.batch] if args.batch else list(CUDA_BATCHES if target == "cuda" else [1])
    for batch in batches:  # before a block is built: the table builds them one by one
        check_network_fits(arch, shape, batch)
    for i, batch in enumerate(batches):
        if i:
            print()
        _report(arch, shape, target, batch, args)
    return 0

