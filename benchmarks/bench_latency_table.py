"""How well the per-block latency table predicts measured whole-network latency.

For the presets and ``--samples`` architectures drawn from the search space (seeded:
uniform draws from ``space.CHOICES`` decoded by ``arch_from_params``) at CIFAR's 3x32x32
input with 10 classes, it measures each whole network on the target and predicts it from
the table (``cse_nets.latency.table.predict_latency``), then prints one row per
architecture, the Spearman rank correlation between prediction and measurement, and the
median absolute percentage error. Goal: Spearman >= 0.9, median error <= 15%.

The table starts empty in a temporary directory unless ``--cache-dir`` is given, so the
wall time includes building it::

    python benchmarks/bench_latency_table.py
    python benchmarks/bench_latency_table.py --samples 10 --target cpu-torch
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from cse_nets.latency.measure import DEFAULT_TARGET, TARGETS, measure_network, target_fingerprint
from cse_nets.latency.table import LatencyTable, predict_latency
from space import CHOICES, PRESETS, Arch, InputShape, arch_from_params, preset

SHAPE = InputShape(3, 32, 10)


def sampled_archs(count: int, seed: int, input_size: int) -> list[Arch]:
    """``count`` architectures from uniform draws over the search space's choices."""
    rng = random.Random(seed)
    return [arch_from_params({name: rng.choice(choices) for name, choices in CHOICES.items()},
                             input_size)
            for _ in range(count)]


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation: Pearson's on the ranks (ties share their mean rank)."""
    return float(a.rank().corr(b.rank()))


def run(args: argparse.Namespace, directory: Path) -> pd.DataFrame:
    table = LatencyTable(args.target, directory=directory)
    named = [(name, preset(name)) for name in PRESETS]
    named += [(f"sample{i:02d}", arch) for i, arch in
              enumerate(sampled_archs(args.samples, args.seed, SHAPE.input_size))]
    rows = []
    for name, arch in named:
        before = table.measured
        started = time.perf_counter()
        prediction = predict_latency(arch, SHAPE, args.target, table=table)
        predict_s = time.perf_counter() - started
        measured = measure_network(arch, SHAPE, args.target)
        row = {"name": name, "ops": "".join(op[0] for op in arch.ops),
               "measured_ms": measured.median_s * 1e3,
               "spread_ms": measured.spread_s * 1e3,
               "predicted_ms": prediction.total_s * 1e3,
               "new_entries": table.measured - before, "predict_s": predict_s}
        row["error"] = row["predicted_ms"] / row["measured_ms"] - 1
        rows.append(row)
        print(f"{name:10s} {row['ops']}  measured {row['measured_ms']:7.3f} ms "
              f"(IQR {row['spread_ms']:.3f})  predicted {row['predicted_ms']:7.3f} ms  "
              f"{row['error']:+6.1%}  ({row['new_entries']} new entries, "
              f"{predict_s:.1f} s)  {arch}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET, choices=TARGETS)
    parser.add_argument("--samples", type=int, default=30, help="sampled architectures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled draws")
    parser.add_argument("--cache-dir", type=Path, help="table directory (default: a fresh "
                                                       "temporary one)")
    args = parser.parse_args()
    print(f"target {args.target}: {target_fingerprint(args.target)}")
    started = time.perf_counter()
    if args.cache_dir is None:
        with tempfile.TemporaryDirectory() as directory:
            frame = run(args, Path(directory))
    else:
        frame = run(args, args.cache_dir)
    wall = time.perf_counter() - started
    ape = frame["error"].abs()
    print(f"\n{len(frame)} architectures, {int(frame['new_entries'].sum())} table entries "
          f"measured, wall time {wall:.0f} s")
    print(f"Spearman rank correlation (predicted vs measured): "
          f"{spearman(frame['predicted_ms'], frame['measured_ms']):.3f}  (goal >= 0.9)")
    print(f"median absolute percentage error: {ape.median():.1%}  (goal <= 15%); "
          f"mean {ape.mean():.1%}, max {ape.max():.1%}; median signed error "
          f"{frame['error'].median():+.1%}")


if __name__ == "__main__":
    main()
