"""A sampler that learns from each trained network once: the cache's copies are hidden.

The evaluation cache (``search.study.evaluation_cache``) records a re-proposed network as a
COMPLETE copy of the trial that trained it. To Optuna's TPE every copy is one more good
observation at the same point, so each re-proposal makes the next one likelier. Under
mo-asha, where only a handful of trials train to the end, TPE's "good" set fills with
copies of those few and the search collapses onto them: on Fashion-MNIST 16x16, 16 and 29
copies of one finisher per 72-trial search (README, "Schedulers"). Behind this wrapper the
inner sampler sees the study without the copies, so a network weighs once, however often
it was proposed; the copies stay in the study for the report and the fronts.

Optuna's samplers read trials through ``Study._get_trials`` (TPE) or ``Study.get_trials``;
the view filters both and forwards everything else to the study.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.study.schema import is_cached

__all__ = ["DistinctTrialsSampler", "DistinctTrialsView"]


class DistinctTrialsView:
    """``study`` as a sampler should see it: the same, less the trials served from the
    cache."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True,
                    states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states,
                                         use_cache=use_cache)
        return [trial for trial in trials if not is_cached(trial)]

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class DistinctTrialsSampler(BaseSampler):
    """``inner``, shown the study through :class:`DistinctTrialsView`."""

    def __init__(self, inner: BaseSampler) -> None:
        self._inner = inner

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(DistinctTrialsView(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(DistinctTrialsView(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(DistinctTrialsView(study), trial, param_name,
                                              param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
