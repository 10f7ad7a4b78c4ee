"""A sampler whose start-up trials follow a fixed design, then hand over to another sampler.

Optuna's samplers start with random trials (TPE: 10). Here the first ``len(design)``
sampled trials of a study take the design's params instead (``space.spread``: spread over
parameter count), and every later trial is the inner sampler's. Trials enqueued with params
(the presets) are not sampled, so they do not use up the design. The design index of a
trial is the number of sampled trials before it in the study, so a resumed search, or a
second driver on the study, goes on with the design where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["DesignStartupSampler", "enqueued_params"]


def enqueued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The params ``trial`` was enqueued with, if any. Optuna keeps them in a system
    attribute (``Study.enqueue_trial``); no public accessor exists."""
    return trial.system_attrs.get("fixed_params", {})


class DesignStartupSampler(BaseSampler):
    """``design[k]`` for the k-th sampled trial of a study while k < ``len(design)``, then
    ``inner``."""

    def __init__(self, design: Sequence[dict[str, Any]], inner: BaseSampler) -> None:
        self._design = list(design)
        self._inner = inner
        self._assigned: dict[int, dict[str, Any]] = {}  # trial number -> its design params

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not enqueued_params(trial):
            earlier = sum(1 for other in study.get_trials(deepcopy=False)
                          if other.number < trial.number and not enqueued_params(other))
            if earlier < len(self._design):
                self._assigned[trial.number] = self._design[earlier]
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial.number in self._assigned:
            return {}
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial.number in self._assigned:
            return {}
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        design = self._assigned.get(trial.number)
        if design is not None and param_name in design:
            return design[param_name]
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._assigned.pop(trial.number, None)
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
