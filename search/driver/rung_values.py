"""A sampler that learns from the trials mo-asha stopped: every trial is scored at one
rung, the highest that enough trials reached (BOHB's choice of budget, Falkner et al.
2018), rather than only the few that trained to the end.

Under mo-asha 2-13 of 72 trials train to the end on the scheduler benchmark (README,
"Schedulers"). Optuna's TPE sees the others as PRUNED trials without values, all tied in
its "bad" set, so it models the search from the few finishers, which early in a search
are the first arrivals that successive halving lets through whatever they are.

Behind this wrapper TPE sees the study at rung epoch ``E``: the highest of the rungs and
the full budget that at least :data:`MIN_TRIALS` trained trials reached. Each trial that
reached ``E`` is COMPLETE with its accuracy after ``E`` epochs (the per-epoch record the
scheduler replays its rungs from; under mo-asha the schedule is annealed at every rung,
so that is a finished model's accuracy) and its other objectives as they are; a trial
stopped before ``E`` stays PRUNED, below all of them. The evaluation cache's copies are
shown as pruned trials too (:mod:`search.driver.repeats`). Under fifo ``E`` is the full
budget and the sampler is ``tpe-spread-novel``; until 10 trials have reached any rung,
``E`` is the first (TPE is still in its start-up then). The study itself is unchanged;
only what the sampler reads differs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.driver.repeats import RepeatsPrunedSampler, RepeatsPrunedView
from search.study.objectives import ACCURACY
from search.study.schema import SCHEDULER, VAL_ACCURACY_PER_EPOCH, is_cached

__all__ = ["MIN_TRIALS", "RungValuesSampler", "RungValuesView", "model_epoch",
           "recorded_rungs_and_metrics"]

# TPE's own start-up count (search.driver.samplers.TPE_STARTUP): it models no fewer.
MIN_TRIALS = 10


def _curve(trial: FrozenTrial) -> Sequence[float]:
    return trial.user_attrs.get(VAL_ACCURACY_PER_EPOCH) or ()


def model_epoch(trials: Sequence[FrozenTrial], rungs: Sequence[int]) -> int | None:
    """The highest of ``rungs`` and the full budget (the longest record) that at least
    :data:`MIN_TRIALS` trained, finished trials reached; None: no trial trained yet (a
    network over ``--max-params``, pruned untrained, is not one)."""
    finished = [t for t in trials
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_cached(t)]
    trained = [n for n in map(len, map(_curve, finished)) if n > 0]
    if not trained:
        return None
    epochs = sorted({*rungs, max(trained)}, reverse=True)
    return next((e for e in epochs if sum(n >= e for n in trained) >= MIN_TRIALS), epochs[-1])


class RungValuesView(RepeatsPrunedView):
    """``study`` with every trained trial scored at :func:`model_epoch`'s rung, given the
    search's ``rungs`` and its objectives' ``metrics`` in order."""

    def __init__(self, study: optuna.Study, rungs: Sequence[int],
                 metrics: Sequence[str]) -> None:
        super().__init__(study)
        self._rungs, self._metrics = tuple(rungs), list(metrics)

    @classmethod
    def of(cls, study: optuna.Study) -> RungValuesView:
        """The view with the rungs and objectives ``study`` records."""
        return cls(study, *recorded_rungs_and_metrics(study))

    def show(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        shown = super().show(trials)
        epoch = model_epoch(shown, self._rungs)
        if epoch is None or ACCURACY.metric not in self._metrics:
            return shown
        return [_at_epoch(trial, epoch, self._metrics) for trial in shown]


def recorded_rungs_and_metrics(study: optuna.Study) -> tuple[tuple[int, ...], list[str]]:
    """The rungs (none under fifo) and the objectives' metric names a search records."""
    scheduler = study.user_attrs.get(SCHEDULER) or {}
    return tuple(scheduler.get("rungs") or ()), list(study.metric_names or ())


def _at_epoch(trial: FrozenTrial, epoch: int, metrics: list[str]) -> FrozenTrial:
    """``trial`` scored after ``epoch`` epochs, if it was trained that far (``metrics``
    holds the accuracy)."""
    curve = _curve(trial)
    if (trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or is_cached(trial)
            or len(curve) < epoch):
        return trial  # running, failed, a copy, or stopped below the rung: as it is
    if trial.state == TrialState.COMPLETE and len(curve) == epoch:
        return trial  # a finisher scored at the full budget: its own values
    # Costs do not change with training: a pruned trial records them as attributes.
    costs = {name: trial.user_attrs.get(name) for name in metrics if name != ACCURACY.metric}
    if any(v is None for v in costs.values()):
        return trial
    shown = copy.copy(trial)
    shown.state = TrialState.COMPLETE
    shown.values = [float(curve[epoch - 1]) if name == ACCURACY.metric else float(costs[name])
                    for name in metrics]
    return shown


class RungValuesSampler(RepeatsPrunedSampler):
    """``inner``, shown the study through :class:`RungValuesView`."""

    def __init__(self, inner: BaseSampler) -> None:
        super().__init__(inner)
        self._recorded: tuple[tuple[int, ...], list[str]] | None = None

    def view(self, study: optuna.Study) -> RungValuesView:
        # A search records its rungs and objectives before its first proposal, and a
        # sampler lives for one run: read them once, not at each of TPE's 53
        # per-parameter reads of the trials (two storage round trips each).
        if self._recorded is None:
            self._recorded = recorded_rungs_and_metrics(study)
        return RungValuesView(study, *self._recorded)
