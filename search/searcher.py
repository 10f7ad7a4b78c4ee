"""Optuna proposes the trials Ray Tune runs: samplers, and the searcher that records them.

:class:`StudySearch` is Ray Tune's ``OptunaSearch`` over the architecture space; it also
writes each trial's user attributes and failure reason into the study before telling
Optuna the outcome (a told trial's attributes are frozen). It runs in the driver, the
study's only writer.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from search.objectives import Objective
from space import sample_arch

__all__ = [
    "ARCH_KEY",
    "ATTRS_KEY",
    "CRASH_REASON",
    "FAIL_KEY",
    "INTERRUPTED",
    "INTERRUPTED_REASON",
    "StudySearch",
    "make_sampler",
]

ARCH_KEY = "arch"  # in a trial's config: the sampled Arch as JSON
ATTRS_KEY = "user_attrs"  # in a trial's result: JSON of its user attributes
FAIL_KEY = "fail_reason"  # in a trial's result: why the candidate failed
# User attr marking a trial that was cut short by its search stopping: it failed for a
# reason outside its architecture, so it does not count against the trial budget.
INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "interrupted: the search stopped before this trial finished"
CRASH_REASON = ("the trial's Ray worker failed outside the objective (see error.txt in "
                "its trial directory)")


def make_sampler(name: str, *, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """``nsga2`` (population sized to the budget: a few generations), ``tpe`` or ``random``."""
    if name == "nsga2":
        # About four generations within the budget, but never a population so small that
        # crossover has nothing to mix (4) nor so large that a long search never evolves.
        population = max(4, min(50, trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


class StudySearch(OptunaSearch):
    """``OptunaSearch`` over the architecture space that also stores each trial's attributes
    and failure reason.

    It keeps its own map from Tune's trial ids to the Optuna trials its space function was
    handed, so it needs none of ``OptunaSearch``'s private state. ``stopping`` says whether
    the search is being stopped: a trial that errs then (its worker got the same Ctrl-C) is
    interrupted, not failed. ``failure_reason`` names the cause of a trial that erred
    outside the objective (its worker died), given its Tune trial id.
    """

    def __init__(self, *, input_size: int, objectives: Sequence[Objective], study_name: str,
                 sampler: optuna.samplers.BaseSampler,
                 storage: optuna.storages.BaseStorage | None = None,
                 stopping: Callable[[], bool] = lambda: False,
                 failure_reason: Callable[[str], str] = lambda trial_id: CRASH_REASON) -> None:
        self._input_size = input_size
        self._stopping = stopping
        self._failure_reason = failure_reason
        self._asked: optuna.Trial | None = None
        self._running: dict[str, optuna.Trial] = {}
        super().__init__(
            self._define_by_run,
            metric=[o.metric for o in objectives],
            mode=[o.ray_mode for o in objectives],
            sampler=sampler, study_name=study_name, storage=storage,
        )

    def _define_by_run(self, trial: optuna.Trial) -> dict[str, str]:
        """Sample, and record the architecture on the trial at once."""
        arch = sample_arch(trial, self._input_size)
        text = arch.to_json(indent=None)
        trial.set_user_attr("arch", text)
        trial.set_user_attr("arch_str", str(arch))
        self._asked = trial
        return {ARCH_KEY: text}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self._asked = None
        with warnings.catch_warnings():
            # Writing 53 parameters to SQLite takes ~1 s, which OptunaSearch warns about.
            warnings.filterwarnings("ignore", message="Define-by-run function")
            config = super().suggest(trial_id)
        if self._asked is not None:
            self._running[trial_id] = self._asked
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        trial = self._running.pop(trial_id, None)
        if trial is not None and not self._record(trial_id, trial, result or {}, error):
            result, error = None, True  # OptunaSearch tells FAIL for "no values, error"
        super().on_trial_complete(trial_id, result=result, error=error)

    def _record(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any],
                error: bool) -> bool:
        """Write user attrs; ``False`` if the trial failed (with its ``fail_reason``)."""
        if FAIL_KEY in result:
            trial.set_user_attr("fail_reason", str(result[FAIL_KEY]))
            return False
        if ATTRS_KEY in result:
            for key, value in json.loads(result[ATTRS_KEY]).items():
                trial.set_user_attr(key, value)
            return True
        if error and not self._stopping():
            trial.set_user_attr("fail_reason", self._failure_reason(trial_id))
        else:  # Tune stopped it before it reported (the search was interrupted)
            trial.set_user_attr("fail_reason", INTERRUPTED_REASON)
            trial.set_user_attr(INTERRUPTED, True)
        return False
