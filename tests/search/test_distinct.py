"""The distinct-trials sampler: TPE learns from each trained network once."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from search.driver.distinct import DistinctTrialsSampler, DistinctTrialsView
from search.study.schema import CACHED_FROM

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"x": CategoricalDistribution(list("abcdefghij")),
         "y": CategoricalDistribution(list("klmnopqrst"))}


def _study(sampler: optuna.samplers.BaseSampler, copies: int) -> optuna.Study:
    """12 trained trials, the first (a, k) the best; then ``copies`` cache copies of it."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for k in range(12):
        params = {"x": "abcdefghij"[k % 10], "y": "klmnopqrst"[(3 * k) % 10]}
        study.add_trial(create_trial(params=params, distributions=SPACE,
                                     values=[0.9 if k == 0 else 0.3 + k / 100, 100 + k]))
    for _ in range(copies):
        study.add_trial(create_trial(params={"x": "a", "y": "k"}, distributions=SPACE,
                                     values=[0.9, 100], user_attrs={CACHED_FROM: 0}))
    return study


def _proposals(study: optuna.Study, count: int) -> list[tuple[str, str]]:
    asked = []
    for _ in range(count):
        trial = study.ask(SPACE)
        asked.append((trial.params["x"], trial.params["y"]))
        study.tell(trial, state=TrialState.FAIL)  # FAIL: no sampler learns from it
    return asked


def test_the_view_hides_cached_copies_and_forwards_the_rest() -> None:
    study = _study(optuna.samplers.RandomSampler(seed=0), copies=5)
    view = DistinctTrialsView(study)
    assert len(study.trials) == 17
    assert len(view.trials) == len(view.get_trials(deepcopy=False)) == 12
    assert len(view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                use_cache=True)) == 12
    assert view.directions == study.directions


def test_tpe_behind_it_proposes_as_if_the_copies_were_not_there() -> None:
    def tpe() -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=3, n_startup_trials=10)

    without_copies = _proposals(_study(tpe(), copies=0), 20)
    assert _proposals(_study(DistinctTrialsSampler(tpe()), copies=20), 20) == without_copies
    # and the copies do move plain TPE: 21 equal points fill its "good" set and crowd its
    # "bad" one, so the check above is not one that any sampler passes
    assert _proposals(_study(tpe(), copies=20), 20) != without_copies
