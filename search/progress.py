"""What a running search prints: one progress line per finished trial, the front at the end.

Both read the Optuna study (the driver's record of every trial), not Ray's results, so a
resumed search counts the trials of earlier runs too.
"""

from __future__ import annotations

from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray import tune

from search.cache import is_cached
from search.searcher import INTERRUPTED

__all__ = ["Progress", "budget_trials", "format_front", "pareto_front"]


def budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards ``--trials``: trained and complete, or failed on their own
    account. Duplicates served from the cache cost no training and do not count."""
    return [
        t for t in study.get_trials(deepcopy=False)
        if (t.state == TrialState.COMPLETE and not is_cached(t))
        or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED))
    ]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials no other complete trial dominates, fewest parameters first."""
    return sorted(study.best_trials, key=lambda t: (t.user_attrs.get("params", 0), t.number))


def format_front(study: optuna.Study) -> str:
    """The Pareto front as a text table: accuracy, params, MACs, any other cost the study
    minimises (latency), and the architecture string."""
    front = pareto_front(study)
    if not front:
        return "Pareto front: no complete trials"
    extra = [m for m in (study.metric_names or ())[1:] if m not in ("params", "macs")]
    rows = [("trial", "val_acc", "params", "MACs", *extra, "architecture")]
    for t in front:
        attrs = t.user_attrs
        rows.append((f"#{t.number}", f"{t.values[0]:.4f}", f"{attrs.get('params', 0):,}",
                     f"{attrs.get('macs', 0):,}", *(f"{attrs.get(m, 0):.4g}" for m in extra),
                     attrs.get("arch_str", "?")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"Pareto front ({len(front)} of {len(study.trials)} trials):"]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


class Progress(tune.Callback):
    """A Tune callback printing ``[done/total]`` and the front size as trials finish."""

    def __init__(self, study: optuna.Study, total: int, out: TextIO) -> None:
        self._study = study
        self._total = total
        self._out = out

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        self._report()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any,
                       **info: Any) -> None:
        self._report()

    def _report(self) -> None:
        counted = budget_trials(self._study)
        failed = sum(t.state == TrialState.FAIL for t in counted)
        last = max(counted, key=lambda t: t.datetime_complete or t.datetime_start, default=None)
        duplicates = sum(map(is_cached, self._study.get_trials(deepcopy=False)))
        line = (f"[{len(counted)}/{self._total}] trials done ({failed} failed), {duplicates} "
                f"duplicate(s) served from the cache, "
                f"Pareto front: {len(pareto_front(self._study))}")
        if last is not None:
            line += f" | last #{last.number}: " + _describe(last)
        print(line, file=self._out, flush=True)


def _describe(trial: FrozenTrial) -> str:
    if trial.state == TrialState.FAIL:
        return f"FAIL ({trial.user_attrs.get('fail_reason', 'no reason recorded')})"
    attrs = trial.user_attrs
    return (f"acc {trial.values[0]:.4f}, {attrs.get('params', 0):,} params, "
            f"{attrs.get('wall_seconds', 0):.0f} s, {attrs.get('arch_str', '?')}")
