"""The rung-values sampler: TPE sees every trained trial scored at one mo-asha rung."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from search.driver.rung_values import MIN_TRIALS, RungValuesSampler, RungValuesView, model_epoch
from search.study.schema import CACHED_FROM, SCHEDULER, VAL_ACCURACY_PER_EPOCH
from tests.search.test_repeats import SPACE, _proposals, _tpe

optuna.logging.set_verbosity(optuna.logging.WARNING)
RUNGS = [1, 3, 9]


def _curve(epochs: int, k: int) -> list[float]:
    """Accuracies that rank trial ``k`` differently after 3 epochs than after 15."""
    return [0.1 * (e + 1) / epochs + (0.02 * k if e < 3 else -0.01 * k) for e in range(epochs)]


def _trials(stops: list[int], cached: int = 0) -> list[FrozenTrial]:
    """A trained trial per entry of ``stops`` (epochs it trained: 15 to the end, else
    stopped there), then ``cached`` copies of the first."""
    trials = []
    for k, epochs in enumerate(stops):
        params = {"x": "abcdefghij"[k % 10], "y": "klmnopqrst"[(3 * k) % 10]}
        attrs = {VAL_ACCURACY_PER_EPOCH: _curve(epochs, k), "params": 1000.0 + k}
        if epochs == 15:
            trials.append(create_trial(params=params, distributions=SPACE, user_attrs=attrs,
                                       values=[attrs[VAL_ACCURACY_PER_EPOCH][-1], 1000.0 + k]))
        else:
            trials.append(create_trial(params=params, distributions=SPACE, user_attrs=attrs,
                                       state=TrialState.PRUNED))
    first = trials[0]
    return trials + [create_trial(params=first.params, distributions=SPACE, values=first.values,
                                  user_attrs={**first.user_attrs, CACHED_FROM: 0})
                     for _ in range(cached)]


def _study(sampler: optuna.samplers.BaseSampler, trials: list[FrozenTrial],
           rungs: list[int] | None = RUNGS) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.set_metric_names(["val_accuracy", "params"])
    study.set_user_attr(SCHEDULER, {"name": "mo-asha", "rungs": rungs} if rungs else
                        {"name": "fifo"})
    for trial in trials:
        study.add_trial(trial)
    return study


# 14 trials: 2 to the end, 2 stopped at epoch 9, 8 at epoch 3, 2 at epoch 1: 12 reached
# epoch 3, 4 reached epoch 9.
STOPS = [15, 3, 3, 1, 9, 3, 3, 15, 3, 1, 3, 9, 3, 3]


def test_the_model_epoch_is_the_highest_rung_enough_trials_reached() -> None:
    assert model_epoch(_trials(STOPS), RUNGS) == 3
    assert model_epoch(_trials([15] * MIN_TRIALS + [1] * 20), RUNGS) == 15
    assert model_epoch(_trials([9] * MIN_TRIALS + [15] * 3), RUNGS) == 9
    # The cache's copies are not trained trials: 9 trained plus copies is not enough.
    assert model_epoch(_trials([15] * 9, cached=5), RUNGS) == 1
    assert model_epoch(_trials([15] * 3), []) == 15  # fifo: the full budget
    assert model_epoch([], RUNGS) is None
    # networks over --max-params, pruned untrained, are not trained trials
    untrained = _trials([0] * 12)
    assert model_epoch(untrained, RUNGS) is None and model_epoch(untrained, []) is None
    study = _study(optuna.samplers.RandomSampler(seed=0), untrained, rungs=None)
    assert [t.state for t in RungValuesView.of(study).trials] == [TrialState.PRUNED] * 12


def test_the_view_scores_every_trial_that_reached_the_rung_there() -> None:
    study = _study(optuna.samplers.RandomSampler(seed=0), _trials(STOPS, cached=2))
    shown = RungValuesView.of(study).get_trials(deepcopy=False)
    for trial, seen, epochs in zip(study.trials, shown, STOPS, strict=False):
        if epochs >= 3:  # COMPLETE, its accuracy after 3 epochs, its own parameters
            assert seen.state == TrialState.COMPLETE
            assert seen.values == [trial.user_attrs[VAL_ACCURACY_PER_EPOCH][2],
                                   trial.user_attrs["params"]]
        else:
            assert seen.state == TrialState.PRUNED and seen.values is None
    assert [t.state for t in shown[-2:]] == [TrialState.PRUNED] * 2  # copies, as pruned
    # a finisher's accuracy after 3 epochs, not its final one
    assert shown[0].values[0] != study.trials[0].values[0]
    # the study itself is untouched
    assert [t.state for t in study.trials].count(TrialState.PRUNED) == sum(e < 15 for e in STOPS)
    assert len(RungValuesView.of(study)._get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)) == 12


def test_tpe_behind_it_proposes_as_on_a_study_told_the_rung_values() -> None:
    trials = _trials(STOPS, cached=3)
    told = [trial if seen.state != TrialState.COMPLETE else create_trial(
                params=trial.params, distributions=SPACE, values=seen.values)
            for trial, seen in zip(trials, RungValuesView.of(_study(None, trials)).trials,
                                   strict=True)]
    told = [create_trial(params=t.params, distributions=SPACE, state=TrialState.PRUNED)
            if CACHED_FROM in t.user_attrs else t for t in told]
    expected = _proposals(_study(_tpe(), told), 20)
    assert _proposals(_study(RungValuesSampler(_tpe()), trials), 20) == expected
    # ...which differs from TPE that learns from the two finishers alone
    assert _proposals(_study(_tpe(), trials), 20) != expected


def test_under_fifo_it_is_the_repeats_pruned_sampler() -> None:
    trials = _trials([15] * 12, cached=4)
    study = _study(optuna.samplers.RandomSampler(seed=0), trials, rungs=None)
    shown = RungValuesView.of(study).trials
    assert [t.values for t in shown[:12]] == [t.values for t in study.trials[:12]]
    assert [t.state for t in shown[12:]] == [TrialState.PRUNED] * 4
