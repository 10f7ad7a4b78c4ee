"""The MO-ASHA Tune scheduler without Ray: decisions from results, rungs rebuilt from a study."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from ray.tune.schedulers import TrialScheduler

from search.driver.scheduler import MoAshaScheduler, SchedulerSpec, Stop, make_scheduler
from search.study.objectives import objectives_from_names
from search.study.schema import CACHED_FROM, EPOCH_KEY, FAIL_KEY, PRESET_KEY

OBJECTIVES = objectives_from_names(["accuracy", "params"])


def _scheduler(epochs: int = 9, eta: int = 3) -> MoAshaScheduler:
    return make_scheduler(SchedulerSpec("mo-asha", 1, eta), OBJECTIVES, epochs)


def _result(epoch: int, accuracy: float, params: float = 1e5) -> dict[str, float]:
    return {"val_accuracy": accuracy, "params": params, EPOCH_KEY: epoch}


def _decide(scheduler: MoAshaScheduler, trial_id: str, result: dict,
            config: dict | None = None) -> str:
    trial = SimpleNamespace(trial_id=trial_id, config=config or {})
    return scheduler.on_trial_result(None, trial, result)


def test_spec_rungs_and_study_attr() -> None:
    spec = SchedulerSpec("mo-asha", 1, 3)
    assert spec.rungs(15) == (1, 3, 9)
    assert spec.study_attr(15) == {"name": "mo-asha", "min_epochs": 1, "reduction_factor": 3,
                               "rungs": [1, 3, 9]}
    assert SchedulerSpec().rungs(15) == () and SchedulerSpec().study_attr(15) == {"name": "fifo"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "hyperband"}, "unknown scheduler 'hyperband'"),
    ({"reduction_factor": 1}, "reduction-factor must be >= 2"),
    ({"min_epochs": 0}, "min-epochs must be a positive integer"),
    ({"min_epochs": True}, "min-epochs must be a positive integer"),
])
def test_spec_refuses_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SchedulerSpec(**kwargs)


def test_mo_asha_without_a_rung_below_the_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="--scheduler mo-asha needs --epochs above "
                                         r"--min-epochs \(3\).*got 3 epoch"):
        SchedulerSpec("mo-asha", 3, 3).check(3)
    SchedulerSpec("fifo").check(1)  # fifo needs no rung


def test_trials_are_stopped_at_rungs_and_remembered() -> None:
    scheduler = _scheduler()
    assert _decide(scheduler, "a", _result(1, 0.5)) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "b", _result(1, 0.4)) == TrialScheduler.STOP
    assert _decide(scheduler, "a", _result(2, 0.6)) == TrialScheduler.CONTINUE  # no rung
    assert _decide(scheduler, "a", _result(3, 0.7)) == TrialScheduler.CONTINUE  # first
    assert _decide(scheduler, "c", _result(1, 0.9)) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "c", _result(3, 0.65)) == TrialScheduler.STOP
    assert scheduler.stopped_at("b") == Stop(rung=0, epoch=1)
    assert scheduler.stopped_at("c") == Stop(rung=1, epoch=3)
    assert scheduler.stopped_at("a") is None
    assert (scheduler.recorded(1), scheduler.recorded(3)) == (3, 2)


def test_a_failed_result_is_not_ranked() -> None:
    scheduler = _scheduler()
    failed = {"val_accuracy": float("nan"), "params": float("nan"), FAIL_KEY: "NaN loss"}
    assert _decide(scheduler, "a", failed) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "b", {**_result(1, float("nan"))}) == TrialScheduler.CONTINUE
    assert scheduler.recorded(1) == 0


def test_a_trial_far_along_the_front_goes_on() -> None:
    # Two trials on one front: eta 2 lets only the first of the eps-net order go on; a
    # third trial ten times smaller than both is spread far from them, so it goes on.
    scheduler = _scheduler(eta=2)
    assert _decide(scheduler, "a", _result(1, 0.8, 1e6)) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "b", _result(1, 0.7, 9e5)) == TrialScheduler.STOP
    assert _decide(scheduler, "c", _result(1, 0.6, 1e5)) == TrialScheduler.CONTINUE


def _trial(number: int, state: TrialState, curve: list[float], params: float = 1e5,
           **attrs: object) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state, values=[curve[-1], params] if state == TrialState.COMPLETE else None,
        user_attrs={"val_accuracy_per_epoch": curve, "params": params, **attrs})
    trial.number = number
    return trial


def test_replay_rebuilds_the_rungs_from_the_study() -> None:
    trials = [
        _trial(0, TrialState.COMPLETE, [0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.8]),
        _trial(1, TrialState.PRUNED, [0.4], pruned_epoch=1),
        _trial(2, TrialState.PRUNED, [0.55, 0.6, 0.62], pruned_epoch=3),
        _trial(3, TrialState.COMPLETE, [0.5] * 9, **{CACHED_FROM: 0}),  # not trained
        create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "NaN loss"}),
    ]
    scheduler = _scheduler()
    assert scheduler.replay(trials) == 3
    assert (scheduler.recorded(1), scheduler.recorded(3)) == (3, 2)
    # A newcomer is ranked against them: at epoch 1, 0.52 is 2nd of 4 (1*3 < 4); at epoch
    # 3, 0.65 is 2nd of 3 (1*3 >= 3).
    assert _decide(scheduler, "new", _result(1, 0.52)) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "new", _result(3, 0.65)) == TrialScheduler.STOP


def test_the_scheduler_pickles_as_tune_pickles_the_searcher_holding_it() -> None:
    scheduler = _scheduler()
    _decide(scheduler, "a", _result(1, 0.5))
    _decide(scheduler, "b", _result(1, 0.4))
    copy = pickle.loads(pickle.dumps(scheduler))
    assert copy.stopped_at("b") == Stop(0, 1) and copy.recorded(1) == 2


def test_fifo_is_a_scheduler_without_rungs() -> None:
    fifo = make_scheduler(SchedulerSpec("fifo"), OBJECTIVES, 9)
    assert all(_decide(fifo, "a", _result(epoch, 0.1)) == TrialScheduler.CONTINUE
               for epoch in range(1, 10))
    assert fifo.stopped_at("a") is None


def test_a_preset_trains_the_full_budget_and_still_ranks_the_others() -> None:
    scheduler = _scheduler()
    assert _decide(scheduler, "mix", _result(1, 0.5)) == TrialScheduler.CONTINUE
    assert _decide(scheduler, "mnv2", _result(1, 0.4, 1e6),
                   {PRESET_KEY: "mobilenetv2"}) == TrialScheduler.CONTINUE
    assert scheduler.stopped_at("mnv2") is None and scheduler.recorded(1) == 2
    assert _decide(scheduler, "c", _result(1, 0.45, 1e6)) == TrialScheduler.STOP
