"""The reference set: architectures trained well above every proxy's fidelity.

    python benchmarks/reference_set.py                # benchmarks/reference/fashion-mnist-16.csv
    python benchmarks/reference_set.py --preset ci    # a mini-set on synthetic data (tests)

Every proxy a search ranks architectures by (a budget, a MO-ASHA rung, the parameter count)
is judged by how it ranks these (``benchmarks/bench_fidelity.py``). The set:

- the presets (``space.PRESETS``);
- a stratified random sample of the space: ``--random`` strata of equal size along the
  parameter count of ``--pool`` uniform draws, one architecture drawn from each;
- paper-like hybrids (BTN in stages 0-2, CSE in 3-6) and their reverse (CSE early, BTN late)
  at the space's narrow, middle and wide widths;
- with ``--front-of STUDY.db ...``, front members of earlier searches (SQLite files of
  ``search.run`` or ``bench_search_quality.py``): ``--front-count`` of the non-preset
  front architectures of all those studies together, evenly spread along their parameter
  count. They join the file (kind ``front``, named by study and trial) and stay there:
  a later run without the flag keeps their rows.

Each is trained once with seed 0 on one fixed split, and a second time with seed 1 for a
few (``Setting.second_seed``), so that the seed noise of the reference itself is known
(the seed draws the training subset, the initial weights, the order and the augmentation).
One row per (architecture, seed): its JSON, params, MACs, the validation accuracy after
every epoch, the test accuracy after the last, CPU seconds, versions and the command.
The file is rewritten after every finished row, and a rerun skips the rows it has, so an
interrupted run resumes; ``--workers`` processes train one architecture each on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from cse_nets import build_network, count_parameters
from cse_nets.cli import OneLineParser, exits_on_bad_input
from search.data import Splits, load_dataset
from search.reporting.tables import read_table
from search.study.objectives import MACS, measure_costs
from search.study.results import load_results
from search.training.config import TrainConfig
from search.training.loop import (
    NonFiniteLossError,
    final_test_accuracy,
    train_model,
    versions,
)
from space import PRESETS, Arch, InputShape
from space.files import hold_folder, write_text_atomically
from space.sample import CHOICES, WIDTHS, arch_from_params

DEFAULT_OUT = Path(__file__).parent / "reference" / "fashion-mnist-16.csv"
COLUMNS = ("name", "kind", "seed", "params", "macs", "val_accuracy", "test_accuracy",
           "val_accuracy_per_epoch", "cpu_seconds", "arch", "epochs", "subset", "input_size",
           "val_fraction", "dataset", "versions", "command")
# MobileNetV2's repeats and (for a 16-32 px input) strides, shared by the hybrids.
_HYBRID_REPEATS = (1, 2, 3, 4, 3, 3, 1)
_HYBRID_STRIDES = (1, 1, 2, 2, 1, 2, 1)


@dataclass(frozen=True)
class Setting:
    """The task and fidelity every reference row is trained at."""

    dataset: str
    input_size: int
    epochs: int
    subset: float
    batch_size: int
    val_fraction: float
    random: int  # strata of the random sample
    pool: int  # uniform draws the strata are cut from
    second_seed: tuple[str, ...]  # the architectures also trained with seed 1
    presets: tuple[str, ...] = tuple(PRESETS)
    hybrid_widths: tuple[int, ...] = (0, 1, 2)  # narrow, middle, wide


PRESET_SETTINGS = {
    # Seed 1 for six, from the cheapest to the dearest of the set.
    "fashion-mnist": Setting("fashion-mnist", input_size=16, epochs=8, subset=0.15,
                             batch_size=64, val_fraction=0.1, random=20, pool=600,
                             second_seed=("random-00", "random-06", "random-09", "random-12",
                                          "random-15", "cse-early-narrow")),
    "ci": Setting("synthetic", input_size=16, epochs=2, subset=0.1, batch_size=32,
                  val_fraction=0.2, random=3, pool=30,
                  second_seed=("paper-mix", "random-01", "cse-early-narrow"),
                  presets=("paper-mix",), hybrid_widths=(0,)),
}


def _hybrid(ops: tuple[str, ...], width: int, input_size: int) -> Arch:
    params = {"stem": 32, "head_ratio": 4, "head_op": "grouped", "act": "prelu"}
    for index, op in enumerate(ops):
        params |= {f"stage{index}.op": op, f"stage{index}.t": 6,
                   f"stage{index}.c": WIDTHS[index][width], f"stage{index}.n":
                   _HYBRID_REPEATS[index], f"stage{index}.s": _HYBRID_STRIDES[index],
                   f"stage{index}.r": 16, f"stage{index}.cap": 8}
    return arch_from_params(params, input_size)


def _stratified_random(setting: Setting, shape: InputShape) -> Iterator[tuple[str, Arch]]:
    """One architecture from each of ``setting.random`` equal-size strata of parameter count."""
    rng = random.Random(0)
    pool = []
    for _ in range(setting.pool):
        arch = arch_from_params({name: rng.choice(values) for name, values in CHOICES.items()},
                                shape.input_size)
        pool.append((count_parameters(build_network(arch, shape)), arch.to_json(indent=None)))
    pool.sort()
    size = len(pool) / setting.random
    for stratum in range(setting.random):
        members = pool[math.floor(stratum * size):math.floor((stratum + 1) * size)]
        yield f"random-{stratum:02d}", Arch.from_json(rng.choice(members)[1])


def reference_archs(setting: Setting, shape: InputShape) -> list[tuple[str, str, Arch]]:
    """(name, kind, arch) of the whole set, in a fixed order."""
    archs = [(name, "preset", PRESETS[name]) for name in setting.presets]
    archs += [(name, "random", arch) for name, arch in _stratified_random(setting, shape)]
    for width in setting.hybrid_widths:
        label = ("narrow", "middle", "wide")[width]
        archs.append((f"btn-early-{label}", "paper-like",
                      _hybrid(("btn",) * 3 + ("cse",) * 4, width, shape.input_size)))
        archs.append((f"cse-early-{label}", "reverse",
                      _hybrid(("cse",) * 3 + ("btn",) * 4, width, shape.input_size)))
    return archs


def front_members(paths: list[Path], count: int,
                  shape: InputShape) -> list[tuple[str, str, Arch]]:
    """(name, "front", arch) of ``count`` non-preset front architectures of the studies in
    ``paths`` (each a search's SQLite file), evenly spread along their parameter count."""
    members: dict[str, tuple[int, str]] = {}  # arch JSON -> (params, name)
    for path in paths:
        if not path.is_file():  # SQLAlchemy would create an empty database
            raise ValueError(f"--front-of {path}: no such study file")
        storage = f"sqlite:///{path}"
        for summary in optuna.get_all_study_summaries(storage):
            results = load_results(optuna.load_study(study_name=summary.study_name,
                                                     storage=storage))
            if results.info.shape != shape:
                raise ValueError(f"--front-of {path}: study {summary.study_name!r} is on "
                                 f"{results.info.shape}, the reference set on {shape}")
            front = results.front
            for number in front.index[front["preset"].fillna("") == ""]:
                arch = results.archs[number]
                members.setdefault(arch.to_json(indent=None), (
                    count_parameters(build_network(arch, shape)),
                    f"front-{summary.study_name}-t{number}"))
    if not members:
        raise ValueError(f"--front-of: no front member outside the presets in "
                         f"{', '.join(map(str, paths))}")
    ordered = sorted((params, name, text) for text, (params, name) in members.items())
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round())
    return [(ordered[i][1], "front", Arch.from_json(ordered[i][2])) for i in picks.astype(int)]


def planned_rows(setting: Setting, shape: InputShape,
                 extra: tuple[tuple[str, str, Arch], ...] = ()
                 ) -> list[tuple[str, str, Arch, int]]:
    archs = [*reference_archs(setting, shape), *extra]
    rows = [(name, kind, arch, 0) for name, kind, arch in archs]
    rows += [(name, kind, arch, 1) for name, kind, arch in archs if name in setting.second_seed]
    return rows


_SPLITS: dict[str, Splits] = {}


def _worker_init(setting: Setting) -> None:
    torch.set_num_threads(1)  # one architecture per core: --workers processes
    _SPLITS["splits"] = load_dataset(setting.dataset, val_fraction=setting.val_fraction,
                                     seed=0, input_size=setting.input_size)


def train_row(setting: Setting, name: str, kind: str, arch_json: str,
              seed: int) -> dict[str, Any]:
    """Train one reference row in this (worker) process and describe it."""
    splits = _SPLITS["splits"]
    arch = Arch.from_json(arch_json)
    shape = splits.info.shape
    config = TrainConfig(epochs=setting.epochs, subset=setting.subset,
                         batch_size=setting.batch_size, seed=seed, device="cpu")
    started = time.process_time()
    model = build_network(arch, shape, seed=seed)
    history: list[float] = []
    try:
        train_model(model, splits, config, on_epoch=lambda e: history.append(e.val_accuracy))
        test = final_test_accuracy(model, splits, config)
    except NonFiniteLossError:  # a diverged row stays, accuracies NaN, so no rerun retries it
        test = math.nan
        history.append(math.nan)
    return {
        "name": name, "kind": kind, "seed": seed, "params": count_parameters(model),
        "macs": int(measure_costs(arch, model, shape)[MACS.metric]),
        "val_accuracy": history[-1], "test_accuracy": test,
        "val_accuracy_per_epoch": json.dumps([round(a, 5) for a in history]),
        "cpu_seconds": round(time.process_time() - started, 2),
        "arch": arch.to_json(indent=None), "epochs": setting.epochs, "subset": setting.subset,
        "input_size": setting.input_size, "val_fraction": setting.val_fraction,
        "dataset": setting.dataset, "versions": json.dumps(versions()),
    }


def _train_row_star(args: tuple[Any, ...]) -> dict[str, Any]:
    return train_row(*args)


def read_rows(path: Path) -> pd.DataFrame:
    """The rows already written (none if the file does not exist yet)."""
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return read_table(path, COLUMNS, "reference-set file")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESET_SETTINGS), default="fashion-mnist")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"CSV to write and resume (default: {DEFAULT_OUT})")
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--front-of", type=Path, nargs="+", default=[], metavar="STUDY_DB",
                        help="add front members of these searches' SQLite files")
    parser.add_argument("--front-count", type=int, default=5,
                        help="how many front members to add (default: 5)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.front_count < 1:
        parser.error("--front-count must be at least 1")
    return args


@exits_on_bad_input
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setting = PRESET_SETTINGS[args.preset]
    out = args.out or DEFAULT_OUT
    # Two runs on one CSV would each rewrite it with only their own new rows.
    with hold_folder(out.parent, instead="give --out a file in another folder"):
        return _train_missing(args, setting, out)


def _train_missing(args: argparse.Namespace, setting: Setting, out: Path) -> int:
    """Train every planned row ``out`` lacks, rewriting ``out`` after each."""
    done = read_rows(out)
    shape = load_dataset(setting.dataset, val_fraction=setting.val_fraction,
                         input_size=setting.input_size).info.shape
    extra = front_members(args.front_of, args.front_count, shape) if args.front_of else []
    plan = planned_rows(setting, shape, tuple(extra))
    have = set(zip(done["name"], done["seed"], strict=True))
    todo = [(name, kind, arch, seed) for name, kind, arch, seed in plan
            if (name, seed) not in have]
    # The dearest first, so the last to finish are short ones and both workers stay busy.
    todo.sort(key=lambda row: -measure_costs(row[2], build_network(row[2], shape),
                                             shape)[MACS.metric])
    command = shlex.join(["python", "benchmarks/reference_set.py", *sys.argv[1:]])
    print(f"reference set: {len(plan)} rows, {len(have)} done, {len(todo)} to train "
          f"({setting.epochs} epochs on {setting.subset:.0%} of {setting.dataset} at "
          f"{setting.input_size}px) -> {out}", flush=True)
    if not todo:  # no workers to start
        return 0
    rows = [dict(row) for _, row in done.iterrows()]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_worker_init, initargs=(setting,)) as pool:
        jobs = [(setting, name, kind, arch.to_json(indent=None), seed)
                for name, kind, arch, seed in todo]
        for row in pool.imap_unordered(_train_row_star, jobs):
            rows.append({**row, "command": command})
            frame = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values(["kind", "name",
                                                                          "seed"])
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(out, frame.to_csv(index=False))
            print(f"  {row['name']} seed {row['seed']}: val {row['val_accuracy']:.4f} test "
                  f"{row['test_accuracy']:.4f}, {row['params']:,} params, "
                  f"{row['cpu_seconds']:.0f} CPU-s ({len(rows)}/{len(plan)}, "
                  f"{(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
