"""What a running search prints: trials starting, their epochs with the time left, a line per
finished trial, the front at the end.

Both read the Optuna study (the driver's record of every trial), not Ray's results, so a
resumed search counts the trials of earlier runs too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray import tune

from search.study.objectives import ACCURACY, MACS, PARAMS
from search.study.schema import (
    ARCH_KEY,
    ARCH_STR,
    CACHED_FROM,
    EPOCH_KEY,
    FAIL_REASON,
    NUMBER_KEY,
    OVER_MAX_PARAMS,
    PARTIAL_ACCURACY,
    PARTIAL_KEY,
    PRUNED_EPOCH,
    VAL_ACCURACY_PER_EPOCH,
    WALL_SECONDS,
    budget_trials,
    is_cached,
)
from space import Arch

__all__ = ["Progress", "format_front", "pareto_front"]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials no other complete trial dominates, fewest parameters first."""
    return sorted(study.best_trials, key=lambda t: (t.user_attrs.get(PARAMS.metric, 0), t.number))


def format_front(study: optuna.Study) -> str:
    """The Pareto front as a text table: accuracy, params, MACs, any other cost the study
    minimises (latency), and the architecture string; a trial served from the cache names
    the trial that trained its network (``#24=#15``)."""
    front = pareto_front(study)
    if not front:
        return "Pareto front: no complete trials"
    extra = [m for m in (study.metric_names or ())[1:] if m not in (PARAMS.metric, MACS.metric)]
    rows = [("trial", "val_acc", "params", "MACs", *extra, "architecture")]
    for t in front:
        attrs = t.user_attrs
        copy_of = f"=#{attrs[CACHED_FROM]}" if attrs.get(CACHED_FROM) is not None else ""
        rows.append((f"#{t.number}{copy_of}", f"{t.values[0]:.4f}",
                     f"{attrs.get(PARAMS.metric, 0):,}", f"{attrs.get(MACS.metric, 0):,}",
                     *(f"{attrs.get(m, 0):.4g}" for m in extra), attrs.get(ARCH_STR, "?")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"Pareto front ({len(front)} of {len(study.trials)} trials):"]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


@dataclass
class _Live:
    """A trial Tune is running: its study number and the epochs it has reported."""

    number: int | None
    epoch: int = 0


class Progress(tune.Callback):
    """A Tune callback printing what the search is doing, from the trials' own reports.

    A line when a trial starts; after an epoch, the running trials with the epoch each has
    reached and an estimate of the time left (at most one such line per ``interval``
    seconds); and ``[done/total]`` with the front size when a trial ends.
    """

    def __init__(self, study: optuna.Study, total: int, out: TextIO, *, epochs: int,
                 interval: float = 10.0) -> None:
        self._study = study
        self._total = total
        self._out = out
        self._epochs = epochs
        self._interval = interval
        self._live: dict[str, _Live] = {}
        self._first_start: float | None = None
        self._epochs_done = 0  # by this run's trials, since _first_start
        self._last_line = -math.inf

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        now = time.monotonic()
        if self._first_start is None:
            self._first_start = now
        number = trial.config.get(NUMBER_KEY)
        self._live[trial.trial_id] = _Live(number)
        try:
            arch = str(Arch.from_json(trial.config[ARCH_KEY]))
        except (KeyError, ValueError):
            arch = "?"
        self._print(f"trial #{number} started ({len(self._live)} running): {arch}")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        live = self._live.get(trial.trial_id)
        if live is None or EPOCH_KEY not in result:
            return
        self._epochs_done += result[EPOCH_KEY] - live.epoch
        live.epoch = result[EPOCH_KEY]
        now = time.monotonic()
        if PARTIAL_KEY in result and now - self._last_line >= self._interval:
            self._last_line = now
            accuracy = result.get(ACCURACY.metric, math.nan)
            self._print(f"  #{live.number} epoch {live.epoch}/{self._epochs}: val_acc "
                        f"{accuracy:.4f} | running {self._running_text()}"
                        f"{self._eta_text(budget_trials(self._study))}")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        self._end(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        self._end(trial)

    def _running_text(self) -> str:
        return ", ".join(f"#{live.number} {live.epoch}/{self._epochs}"
                         for live in self._live.values())

    def _eta_text(self, counted: list[FrozenTrial]) -> str:
        """`` | about N min left`` once this run has trained an epoch, else ``""``;
        ``counted`` are the study's :func:`budget_trials`."""
        if self._first_start is None or self._epochs_done == 0:
            return ""
        rate = self._epochs_done / max(time.monotonic() - self._first_start, 1e-9)
        # Under a scheduler that stops trials early a trial trains fewer epochs than the
        # budget's: expect as many as the trials trained so far did on average.
        trained = [len(t.user_attrs.get(VAL_ACCURACY_PER_EPOCH) or ())
                   for t in counted if t.state != TrialState.FAIL]
        expected = sum(trained) / len(trained) if trained else self._epochs
        waiting = max(0, self._total - len(counted) - len(self._live))
        left = (sum(max(0.0, expected - live.epoch) for live in self._live.values())
                + waiting * expected)
        return f" | about {_duration(left / rate)} left" if left > 0 else ""

    def _end(self, trial: Any) -> None:
        self._live.pop(trial.trial_id, None)
        counted = budget_trials(self._study)
        failed = sum(t.state == TrialState.FAIL for t in counted)
        pruned = sum(t.state == TrialState.PRUNED for t in counted)
        last = max(counted, key=lambda t: t.datetime_complete or t.datetime_start, default=None)
        every = self._study.get_trials(deepcopy=False)
        duplicates = sum(map(is_cached, every))
        oversized = sum(OVER_MAX_PARAMS in t.user_attrs for t in every)
        line = (f"[{len(counted)}/{self._total}] trials done ({failed} failed"
                + (f", {pruned} pruned" if pruned else "")
                + f"), {duplicates} duplicate(s) served from the cache, "
                + (f"{oversized} over --max-params not trained, " if oversized else "")
                + f"Pareto front: {len(pareto_front(self._study))}")
        if last is not None:
            line += f" | last #{last.number}: " + _describe(last)
        if self._live:
            line += f" | running {self._running_text()}"
        self._print(line + self._eta_text(counted))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"


def _describe(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    if trial.state == TrialState.FAIL:
        return f"FAIL ({attrs.get(FAIL_REASON, 'no reason recorded')})"
    params, arch = f"{attrs.get(PARAMS.metric, 0):,} params", attrs.get(ARCH_STR, "?")
    if trial.state == TrialState.PRUNED:
        return (f"pruned at epoch {attrs.get(PRUNED_EPOCH, '?')} (partial acc "
                f"{attrs.get(PARTIAL_ACCURACY, math.nan):.4f}), {params}, {arch}")
    return f"acc {trial.values[0]:.4f}, {params}, {attrs.get(WALL_SECONDS, 0):.0f} s, {arch}"
