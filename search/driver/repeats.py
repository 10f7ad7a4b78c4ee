"""A sampler that counts a re-proposed network against itself: the evaluation cache's
copies are shown to it as pruned trials.

The evaluation cache (``search.study.evaluation_cache``) records a re-proposed network as a
COMPLETE copy of the trial that trained it. To Optuna's TPE every copy is one more good
observation at the same point. Under mo-asha, where only a handful of trials train to the
end, TPE's "good" set is those few and the copies pile up on them: 16-29 copies of 72
trials on four of five seeds of the scheduler benchmark (README, "Schedulers"). Hiding
the copies does not help: TPE then proposes the same network again and again (101 in a
row, and the search stopped), since nothing it sees has changed.

Behind this wrapper the inner sampler sees each copy as a PRUNED trial with no values.
Optuna's TPE ranks such trials below every complete one, so the network's own trial
still pulls proposals towards it, while each repeat pushes them away from that exact
point, as a proposal over ``--max-params``, recorded PRUNED, pushes them away from large
networks. The study keeps the copies as they are, COMPLETE with the trained trial's
values, for the report and the fronts.

Optuna's samplers read trials through ``Study._get_trials`` (TPE) or ``Study.get_trials``;
the view rewrites both and forwards everything else to the study.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.study.schema import is_cached

__all__ = ["RepeatsPrunedSampler", "RepeatsPrunedView"]


def _as_pruned(trial: FrozenTrial) -> FrozenTrial:
    shown = copy.copy(trial)
    shown.state = TrialState.PRUNED
    shown.values = None
    return shown


class RepeatsPrunedView:
    """``study`` as a sampler should see it: the same, but each trial served from the cache
    is PRUNED, without values."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True,
                    states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        # The states asked for apply to the trials as shown: ask the study for all of them.
        trials = self._study._get_trials(deepcopy=deepcopy, states=None, use_cache=use_cache)
        return [trial for trial in self.show(trials) if states is None or trial.state in states]

    def show(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """``trials`` as the sampler sees them (copies where they differ)."""
        return [_as_pruned(trial) if is_cached(trial) else trial for trial in trials]

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class RepeatsPrunedSampler(BaseSampler):
    """``inner``, shown the study through :meth:`view`."""

    def __init__(self, inner: BaseSampler) -> None:
        self._inner = inner

    def view(self, study: optuna.Study) -> RepeatsPrunedView:
        """``study`` as ``inner`` sees it."""
        return RepeatsPrunedView(study)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(self.view(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(self.view(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(self.view(study), trial, param_name,
                                              param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()
