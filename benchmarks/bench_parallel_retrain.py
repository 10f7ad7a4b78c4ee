"""Retraining front-sized networks one after another with every core's threads, against
side by side in one-thread processes (what ``search.export --jobs`` chooses between).

    python benchmarks/bench_parallel_retrain.py [--images 6000] [--count 3]

Takes the ``--count`` reference-set architectures (``benchmarks/reference``) nearest in
parameters to 150k, 250k and 450k (the sizes of ``make search``'s fronts), trains each for
one epoch on ``--images`` Fashion-MNIST images at 16x16 (the export's recipe: batch 64),
first in turn in this process with ``torch``'s default threads, then twice in a pool of
one process per core with one thread each: in size order, and dearest first by
multiply-accumulates (``search.export``'s order). It prints the images per second of each
and the pool's ratios to the first. All runs train the same networks on the same images;
a pool's time includes starting its processes.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from cse_nets import build_network, count_macs
from cse_nets.cli import OneLineParser, exits_on_bad_input, positive_int_arg
from search.data import Splits, load_dataset
from search.training import TrainConfig, train_model
from space import Arch

REFERENCE = Path(__file__).parent / "reference" / "fashion-mnist-16.csv"
SIZES = (150_000, 250_000, 450_000)


def _front_sized(count: int) -> list[Arch]:
    with REFERENCE.open(newline="") as file:
        rows = list(csv.DictReader(file))
    chosen = [min(rows, key=lambda row: abs(int(row["params"]) - size))
              for size in SIZES[:count]]
    return [Arch.from_json(row["arch"]) for row in chosen]


def _splits(images: int) -> tuple[Splits, TrainConfig]:
    splits = load_dataset("fashion-mnist", seed=0, input_size=16)
    empty = (splits.val[0][:0], splits.val[1][:0])  # training only: no validation pass
    config = TrainConfig(epochs=1, batch_size=64, subset=images / len(splits.train[1]),
                         device="cpu")
    return replace(splits, val=empty), config


def _train(arch: Arch, images: int) -> float:
    splits, config = _splits(images)
    model = build_network(arch, splits.info.shape, seed=0)
    started = time.perf_counter()
    train_model(model, splits, config)
    return time.perf_counter() - started


def _one_thread() -> None:
    torch.set_num_threads(1)


def _side_by_side(archs: list[Arch], images: int, cores: int) -> tuple[list[float], float]:
    started = time.perf_counter()
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        seconds = list(pool.map(_train, archs, [images] * len(archs)))
    return seconds, time.perf_counter() - started


@exits_on_bad_input
def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int_arg, default=6000)
    parser.add_argument("--count", type=int, default=3, choices=(1, 2, 3))
    args = parser.parse_args(argv)
    archs = _front_sized(args.count)
    cores = len(os.sched_getaffinity(0))
    shape = _splits(args.images)[0].info.shape  # decode once, outside the timings
    print(f"{len(archs)} networks, {args.images:,} images each, {cores} cores")

    started = time.perf_counter()
    serial = [_train(arch, args.images) for arch in archs]
    serial_wall = time.perf_counter() - started
    for arch, seconds in zip(archs, serial, strict=True):
        print(f"  in turn, {torch.get_num_threads()} threads: {arch}: {seconds:.1f} s")

    dearest_first = sorted(archs, key=lambda arch: -count_macs(build_network(arch, shape),
                                                               shape.chw))
    total = len(archs) * args.images
    report = [f"in turn: {total / serial_wall:.0f} img/s ({serial_wall:.1f} s)"]
    for order, ordered in (("in size order", archs), ("dearest (MACs) first", dearest_first)):
        side, side_wall = _side_by_side(ordered, args.images, cores)
        for arch, seconds in zip(ordered, side, strict=True):
            print(f"  side by side, 1 thread each, {order}: {arch}: {seconds:.1f} s")
        report.append(f"side by side, {order}: {total / side_wall:.0f} img/s "
                      f"({side_wall:.1f} s, ratio {serial_wall / side_wall:.2f}x)")
    print("; ".join(report) + " (process start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
