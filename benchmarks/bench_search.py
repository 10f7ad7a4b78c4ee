"""Orchestration overhead of the search: its wall time / the sum of its trials' training time.

A small synthetic search run in-process through ``search.driver.tune.run_search`` (Ray start,
Optuna sampling into SQLite, one Ray worker per trial, model building and MAC counting,
shutdown excluded). With one trial at a time a ratio of 1.0 would mean no overhead at all;
the rest is Ray start-up, worker start-up (a fresh process importing torch per trial), the
driver's bookkeeping and the objective's own building and counting (shown separately).

    python benchmarks/bench_search.py                    # 8 trials, one at a time
    python benchmarks/bench_search.py --trials 16 --max-concurrent 2
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.driver.config import SearchConfig
from search.driver.tune import run_search
from search.study.schema import TRAIN_SECONDS, WALL_SECONDS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=16, help="synthetic image side")
    parser.add_argument("--subset", type=float, default=0.25, help="of the training split")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        config = SearchConfig(
            dataset="synthetic", budget="smoke", trials=args.trials, epochs=args.epochs,
            subset=args.subset, batch_size=32, val_fraction=0.1, lr=0.05,
            input_size=args.input_size, sampler="random", results_dir=Path(folder),
            max_concurrent=args.max_concurrent,
        )
        started = datetime.now()
        result = run_search(config, out=io.StringIO())
        study = optuna.load_study(study_name=result.study_name, storage=result.storage_url)
        trials = sorted(study.get_trials(states=(TrialState.COMPLETE,)),
                        key=lambda t: t.datetime_start)
    train = sum(t.user_attrs[TRAIN_SECONDS] for t in trials)
    objective = sum(t.user_attrs[WALL_SECONDS] for t in trials)
    print(f"{len(trials)} complete trials, {args.max_concurrent} at a time, synthetic "
          f"{args.input_size}x{args.input_size}, subset {args.subset}, {args.epochs} epoch(s)")
    print(f"search wall time          {result.wall_seconds:8.1f} s")
    print(f"sum of training times     {train:8.1f} s")
    print(f"sum of objective times    {objective:8.1f} s  (+ build and MAC count)")
    print(f"overhead (wall / train)   {result.wall_seconds / train:8.2f}")
    print(f"  of which per trial      {(result.wall_seconds - train) / len(trials):8.2f} s "
          "(wall - train, spread over the trials)")
    if args.max_concurrent == 1 and len(trials) > 1:
        _print_breakdown(started, trials)
    return 0


def _print_breakdown(started: datetime, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Where the overhead goes, from the study's own time stamps (one trial at a time):
    before the first trial, the first trial's worker start, and each later trial's cost
    beyond its objective (sampling and writing it, Tune, reporting, the gap before it)."""
    def beyond_objective(trial: optuna.trial.FrozenTrial) -> float:
        span = (trial.datetime_complete - trial.datetime_start).total_seconds()
        return span - trial.user_attrs[WALL_SECONDS]

    # each later trial with the driver's gap before it
    later = [beyond_objective(b) + (b.datetime_start - a.datetime_complete).total_seconds()
             for a, b in itertools.pairwise(trials)]
    building = statistics.median(t.user_attrs[WALL_SECONDS] - t.user_attrs[TRAIN_SECONDS]
                                 for t in trials[1:])
    print(f"before the first trial    {(trials[0].datetime_start - started).total_seconds():8.2f}"
          " s (Ray start, dataset, study)")
    print(f"first trial's worker      {beyond_objective(trials[0]):8.2f} s (process start, "
          "imports, data to the worker)")
    print(f"each later trial          {statistics.median(later):8.2f} s (median: sampling, "
          f"Tune, reporting) + {building:.2f} s building and counting")


if __name__ == "__main__":
    sys.exit(main())
