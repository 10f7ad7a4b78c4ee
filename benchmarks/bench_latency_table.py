"""How well latency predictions match measured whole networks, on networks held out of
every fit.

Per target: the table (empty, in a temporary directory unless ``--cache-dir``) and its
correction (:mod:`cse_nets.latency.correction`), fitted on ``--fit-networks``
architectures sampled with seed ``--fit-seed``; then the presets and ``--samples``
architectures sampled with another seed (``--seed``) are predicted, by the plain sum of
blocks and by the correction, and measured whole twice. One row per target and predictor:
the share of networks within 10% and 20% of the first measurement, the median and worst
absolute error, Spearman's rank correlation. The ``repeat`` row scores the second
measurement against the first: the noise floor every predictor faces. Goals: >= 90% within
10%, worst <= 20%, Spearman >= 0.98.

    python benchmarks/bench_latency_table.py                       # 3 CPU targets, a few min
    python benchmarks/bench_latency_table.py --targets cpu-torch --samples 10
    python benchmarks/bench_latency_table.py --preset ci --csv out.csv   # tiny, for tests
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cse_nets.latency.correction import correction_for, predict_corrected, sample_archs
from cse_nets.latency.measure import (
    INT8_TARGET,
    ONNX_TARGET,
    TARGETS,
    check_target,
    measure_network,
    target_fingerprint,
)
from cse_nets.latency.table import LatencyTable
from cse_nets.latency.timing import Protocol
from space import PRESETS, InputShape, preset

SUMMARY_COLUMNS = ("target", "predictor", "networks", "within_10", "within_20",
                   "median_error", "worst_error", "spearman")
PREDICTORS = ("sum of blocks", "corrected", "repeat")


@dataclass(frozen=True)
class Preset:
    targets: tuple[str, ...]
    shape: InputShape
    fit_networks: int
    samples: int
    presets: bool  # evaluate the named presets too
    protocol: Protocol | None  # None: the default protocol


PRESETS_RUN = {
    "full": Preset((ONNX_TARGET, "cpu-torch", INT8_TARGET), InputShape(3, 32, 10), 24, 30,
                   presets=True, protocol=None),
    # Seconds, not minutes: tiny inputs, few networks, a protocol with few runs.
    "ci": Preset((ONNX_TARGET, "cpu-torch", INT8_TARGET), InputShape(3, 8, 4), 4, 3,
                 presets=False, protocol=Protocol(warmup=2, rounds=3, runs=3, min_round_s=0.0)),
}


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation: Pearson's on the ranks (ties share their mean rank)."""
    return float(a.rank().corr(b.rank()))


def score(target: str, predictor: str, predicted: pd.Series,
          measured: pd.Series) -> dict[str, object]:
    error = (predicted / measured - 1).abs()
    return {"target": target, "predictor": predictor, "networks": len(error),
            "within_10": float((error <= 0.10).mean()), "within_20": float((error <= 0.20).mean()),
            "median_error": float(error.median()), "worst_error": float(error.max()),
            "spearman": spearman(predicted, measured)}


def run_target(target: str, run: Preset, args: argparse.Namespace,
               directory: Path) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    started = time.perf_counter()
    table = LatencyTable(target, directory=directory, protocol=run.protocol)
    correction = correction_for(table, run.shape, networks=run.fit_networks,
                                seed=args.fit_seed, progress=print)
    fitted = time.perf_counter() - started
    print(f"{target}: correction fitted on {run.fit_networks} networks (seed {args.fit_seed}) "
          f"in {fitted:.0f} s: " + ", ".join(f"{name} {value:.3g}" for name, value
                                             in correction.coefficients.items()), flush=True)
    named = [(name, preset(name)) for name in PRESETS] if run.presets else []
    named += [(f"seed{args.seed}-{i:02d}", arch) for i, arch in
              enumerate(sample_archs(run.samples, args.seed, run.shape.input_size))]
    rows = []
    for name, arch in named:
        predicted = predict_corrected(arch, run.shape, target, table=table,
                                      correction=correction)
        first, second = (measure_network(arch, run.shape, target, protocol=run.protocol)
                         for _ in range(2))
        row = {"target": target, "name": name, "measured_ms": first.median_s * 1e3,
               "repeat_ms": second.median_s * 1e3,
               "blocks_ms": predicted.blocks.total_s * 1e3,
               "corrected_ms": predicted.total_s * 1e3}
        rows.append(row)
        measured = row["measured_ms"]
        print(f"  {name:12s} measured {measured:7.3f} ms (again {row['repeat_ms']:7.3f})"
              f"  blocks {row['blocks_ms']:7.3f} ({row['blocks_ms'] / measured - 1:+6.1%})"
              f"  corrected {row['corrected_ms']:7.3f} "
              f"({row['corrected_ms'] / measured - 1:+6.1%})  {arch}", flush=True)
    frame = pd.DataFrame(rows)
    summary = [score(target, predictor, frame[column], frame["measured_ms"])
               for predictor, column in zip(PREDICTORS, ("blocks_ms", "corrected_ms",
                                                         "repeat_ms"), strict=True)]
    print(f"{target}: {len(frame)} held-out networks in {time.perf_counter() - started:.0f} s "
          f"(fit included)", flush=True)
    return frame, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=PRESETS_RUN)
    parser.add_argument("--targets", help=f"comma-separated, from {', '.join(TARGETS)} "
                                          "(default: the preset's)")
    parser.add_argument("--samples", type=int, help="held-out sampled architectures")
    parser.add_argument("--fit-networks", type=int, help="architectures the correction is "
                                                          "fitted on")
    parser.add_argument("--fit-seed", type=int, default=0, help="seed of the fitted draws")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out draws")
    parser.add_argument("--cache-dir", type=Path, help="table directory (default: a fresh "
                                                       "temporary one)")
    parser.add_argument("--csv", type=Path, help="also write the summary table here")
    args = parser.parse_args(argv)
    run = PRESETS_RUN[args.preset]
    targets = tuple(args.targets.split(",")) if args.targets else run.targets
    try:
        for target in targets:
            check_target(target)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.fit_seed == args.seed:
        print("error: --seed must differ from --fit-seed (held-out networks)", file=sys.stderr)
        return 2
    run = Preset(targets, run.shape, args.fit_networks or run.fit_networks,
                 run.samples if args.samples is None else args.samples, run.presets,
                 run.protocol)
    started = time.perf_counter()
    summary = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.cache_dir or Path(scratch)
        for target in targets:
            print(f"target {target}: {target_fingerprint(target)}")
            summary += run_target(target, run, args, directory)[1]
    table = pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS))
    print(f"\nheld out: {'the presets and ' if run.presets else ''}{run.samples} networks "
          f"(seed {args.seed}) at {'x'.join(map(str, run.shape.chw))}; correction fitted on "
          f"{run.fit_networks} others (seed {args.fit_seed}); wall time "
          f"{time.perf_counter() - started:.0f} s")
    shown = table.copy()
    for column in ("within_10", "within_20", "median_error", "worst_error"):
        shown[column] = shown[column].map(lambda v: f"{v:.1%}")
    shown["spearman"] = shown["spearman"].map(lambda v: "-" if np.isnan(v) else f"{v:.3f}")
    print(shown.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
