"""When a trial stops: ``fifo`` (every trial trains its full budget) or ``mo-asha``.

:class:`MoAshaScheduler` is a Ray Tune ``TrialScheduler`` around :mod:`search.driver.mo_asha`.
Tune's own schedulers rank on one metric, and Tune validates a list given as its
``metric``; so this one is given none and keeps the search's objectives itself. Every epoch
a trial reports its validation accuracy so far with its costs (which never change); at a
rung the scheduler records the vector and stops the trial unless it ranks in the top
``1/eta`` there (an enqueued preset, the study's reference, is never stopped). It
remembers whom it stopped, at which rung, for
:class:`search.driver.searcher.StudySearch` to record those trials as PRUNED.

The rungs are rebuilt from the study on a resume (:meth:`MoAshaScheduler.replay`): a
finished trial's per-epoch accuracies say what it reported at each rung it reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.driver.mo_asha import check_rung_parameters, continues, rung_epochs
from search.study.objectives import ACCURACY, Objective
from search.study.pareto import to_minimisation
from search.study.schema import (
    EPOCH_KEY,
    FAIL_KEY,
    OVER_MAX_PARAMS,
    PRESET_KEY,
    VAL_ACCURACY_PER_EPOCH,
    is_cached,
)

__all__ = ["SCHEDULERS", "MoAshaScheduler", "SchedulerSpec", "Stop", "make_scheduler"]

SCHEDULERS = ("fifo", "mo-asha")


@dataclass(frozen=True)
class SchedulerSpec:
    """The scheduler a search uses, as its flags give it and the study keeps it."""

    name: str = "fifo"
    min_epochs: int = 1  # the first rung (mo-asha)
    reduction_factor: int = 3  # eta: 1/eta of a rung's trials go on (mo-asha)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.name!r}; choose one of "
                             f"{', '.join(SCHEDULERS)}")
        check_rung_parameters(self.min_epochs, self.reduction_factor)

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs at which trials of ``epochs`` epochs are compared (none for fifo)."""
        if self.name == "fifo":
            return ()
        return rung_epochs(self.min_epochs, self.reduction_factor, epochs)

    def check(self, epochs: int) -> None:
        """``ValueError`` if mo-asha would have no rung below the full budget."""
        if self.name == "mo-asha" and not self.rungs(epochs):
            raise ValueError(f"--scheduler mo-asha needs --epochs above --min-epochs "
                             f"({self.min_epochs}) to stop trials early, got {epochs} "
                             "epoch(s); use --scheduler fifo or more epochs")

    def study_attr(self, epochs: int) -> dict[str, Any]:
        """The study attribute that records it for trials of ``epochs`` epochs."""
        if self.name == "fifo":
            return {"name": "fifo"}
        return {"name": self.name, "min_epochs": self.min_epochs,
                "reduction_factor": self.reduction_factor, "rungs": list(self.rungs(epochs))}


@dataclass(frozen=True)
class Stop:
    """Where MO-ASHA stopped a trial."""

    rung: int  # 0-based index into the rungs
    epoch: int  # epochs the trial trained


class MoAshaScheduler(FIFOScheduler):
    """Stopping-type MO-ASHA over the search's objectives; trials are never paused.

    Without rungs it stops nothing: Tune's FIFO order, which is what ``fifo`` runs.
    """

    def __init__(self, objectives: Sequence[Objective], rungs: Sequence[int],
                 reduction_factor: int) -> None:
        super().__init__()
        # Not the Objective rows (their measures are lambdas): Tune pickles the searcher,
        # which holds stopped_at, so this must pickle too.
        self._metrics = tuple(o.metric for o in objectives)
        self._log_scale = np.array([o.log_scale for o in objectives])
        self._directions = tuple(o.direction for o in objectives)
        self._reduction_factor = reduction_factor
        self._rungs = tuple(rungs)
        self._recorded: dict[int, list[np.ndarray]] = {epoch: [] for epoch in self._rungs}
        self._stopped: dict[str, Stop] = {}

    def _point(self, values: Sequence[float]) -> np.ndarray:
        # Minimised, costs in log10 (as search.study.objectives.hypervolume_space scales them), so
        # a rung compares trials as the search's own score does.
        values = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(self._log_scale, np.log10(values), values)
        return to_minimisation(scaled[None, :], self._directions)[0]

    def record_at_rung(self, epoch: int, values: Sequence[float]) -> bool:
        """Add a trial's objective values to rung ``epoch``; whether it goes on."""
        point = self._point(values)
        if not np.isfinite(point).all():
            return True  # not a ranking; the trial fails on its own
        self._recorded[epoch].append(point)
        return continues(np.array(self._recorded[epoch]), self._reduction_factor)

    def replay(self, trials: Iterable[FrozenTrial]) -> int:
        """Record what trials of an earlier run reported at each rung they reached, in trial
        order; how many trials it took them from."""
        used = 0
        for trial in sorted(trials, key=lambda t: t.number):
            if (trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or is_cached(trial)
                    or OVER_MAX_PARAMS in trial.user_attrs):
                continue
            curve = trial.user_attrs.get(VAL_ACCURACY_PER_EPOCH) or []
            costs = [trial.user_attrs.get(metric) for metric in self._metrics[1:]]
            if None in costs:
                continue
            used += 1
            for epoch in self._rungs:
                if epoch <= len(curve):
                    self._recorded[epoch].append(self._point([curve[epoch - 1], *costs]))
        return used

    def recorded(self, epoch: int) -> int:
        """How many vectors rung ``epoch`` holds."""
        return len(self._recorded[epoch])

    def stopped_at(self, trial_id: str) -> Stop | None:
        """Where this scheduler stopped Tune trial ``trial_id`` (None: it did not)."""
        return self._stopped.get(trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        epoch = result.get(EPOCH_KEY)
        if epoch not in self._recorded or FAIL_KEY in result:
            return TrialScheduler.CONTINUE
        goes_on = self.record_at_rung(epoch, [result[metric] for metric in self._metrics])
        # A preset is the study's reference point: it always trains the full budget (its
        # vectors still rank the others).
        if goes_on or trial.config.get(PRESET_KEY):
            return TrialScheduler.CONTINUE
        self._stopped[trial.trial_id] = Stop(rung=self._rungs.index(epoch), epoch=epoch)
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        counts = ", ".join(f"epoch {e}: {len(v)}" for e, v in self._recorded.items())
        return f"MO-ASHA (eta {self._reduction_factor}) rungs {counts}"


def make_scheduler(spec: SchedulerSpec, objectives: Sequence[Objective],
                   epochs: int) -> MoAshaScheduler:
    """Tune's scheduler for ``spec`` over ``objectives`` (accuracy first) for trials of
    ``epochs`` epochs: for fifo, one without rungs."""
    if objectives[0].name != ACCURACY.name:
        raise ValueError("MO-ASHA ranks accuracy first; objectives must start with it")
    return MoAshaScheduler(objectives, spec.rungs(epochs), spec.reduction_factor)
