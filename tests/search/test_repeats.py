"""The repeats-pruned sampler: TPE sees the evaluation cache's copies as pruned trials."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from search.driver.repeats import RepeatsPrunedSampler, RepeatsPrunedView
from search.study.schema import CACHED_FROM

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"x": CategoricalDistribution(list("abcdefghij")),
         "y": CategoricalDistribution(list("klmnopqrst"))}
BEST = {"x": "a", "y": "k"}


def _study(sampler: optuna.samplers.BaseSampler, copies: int,
           copies_pruned: bool = False) -> optuna.Study:
    """12 trained trials, the first (a, k) the best; then ``copies`` of it, served from the
    cache (COMPLETE, as the search records them) or told PRUNED."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for k in range(12):
        params = {"x": "abcdefghij"[k % 10], "y": "klmnopqrst"[(3 * k) % 10]}
        study.add_trial(create_trial(params=params, distributions=SPACE,
                                     values=[0.9 if k == 0 else 0.3 + k / 100, 100 + k]))
    for _ in range(copies):
        if copies_pruned:
            study.add_trial(create_trial(params=BEST, distributions=SPACE,
                                         state=TrialState.PRUNED))
        else:
            study.add_trial(create_trial(params=BEST, distributions=SPACE, values=[0.9, 100],
                                         user_attrs={CACHED_FROM: 0}))
    return study


def _proposals(study: optuna.Study, count: int) -> list[tuple[str, str]]:
    asked = []
    for _ in range(count):
        trial = study.ask(SPACE)
        asked.append((trial.params["x"], trial.params["y"]))
        study.tell(trial, state=TrialState.FAIL)  # FAIL: no sampler learns from it
    return asked


def _tpe() -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=3, n_startup_trials=10)


def test_the_view_shows_copies_as_pruned_and_forwards_the_rest() -> None:
    study = _study(optuna.samplers.RandomSampler(seed=0), copies=5)
    view = RepeatsPrunedView(study)
    shown = view.get_trials(deepcopy=False)
    assert [t.state for t in shown] == [TrialState.COMPLETE] * 12 + [TrialState.PRUNED] * 5
    assert all(t.values is None for t in shown[12:])
    assert len(view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                use_cache=True)) == 12
    assert len(view.trials) == 17 and view.directions == study.directions
    # the study itself is untouched: its copies stay COMPLETE with the trained values
    assert all(t.state == TrialState.COMPLETE and t.values == [0.9, 100]
               for t in study.trials[12:])


def test_tpe_behind_it_proposes_as_if_the_copies_had_been_pruned() -> None:
    pruned = _proposals(_study(_tpe(), copies=6, copies_pruned=True), 20)
    assert _proposals(_study(RepeatsPrunedSampler(_tpe()), copies=6), 20) == pruned
    # which moves TPE away from the repeated network, which it keeps proposing without them
    assert pruned.count(("a", "k")) < _proposals(_study(_tpe(), copies=0), 20).count(("a", "k"))
