"""How the driver records trials in the study, without Ray: StudySearch and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.driver.progress import format_front, pareto_front
from search.driver.samplers import make_sampler
from search.driver.searcher import StudySearch
from search.driver.startup import DesignStartupSampler
from search.driver.tune import fail_interrupted
from search.study.objectives import objectives_from_names
from search.study.schema import (
    ATTRS_KEY,
    CRASH_REASON,
    FAIL_KEY,
    INTERRUPTED,
    INTERRUPTED_REASON,
    NODE_LOST,
    WORKER_DIED,
    budget_trials,
)
from space import Arch, InputShape, preset, preset_params

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJECTIVES = objectives_from_names(("accuracy", "params"))
SHAPE = InputShape(in_channels=3, input_size=16, num_classes=10)


def _random() -> optuna.samplers.BaseSampler:
    return make_sampler("random", seed=0, trials=8, shape=SHAPE)


def _searcher(storage: optuna.storages.BaseStorage) -> StudySearch:
    return StudySearch(input_size=16, objectives=OBJECTIVES, study_name="s",
                       sampler=_random(), storage=storage)


def _result(accuracy: float, params: int, **attrs: object) -> dict:
    return {"val_accuracy": accuracy, "params": params,
            ATTRS_KEY: json.dumps({"params": params, "macs": 1000, **attrs})}


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")


def test_outcomes_land_in_the_study(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    configs = {trial_id: search.suggest(trial_id) for trial_id in "abcd"}
    search.on_trial_complete("a", result=_result(0.5, 100, device="cpu"))
    search.on_trial_complete("b", result={"val_accuracy": math.nan, "params": math.nan,
                                          FAIL_KEY: "NonFiniteLossError: loss became nan"})
    search.on_trial_complete("c", error=True)  # the worker died: no result at all
    search.on_trial_complete("d", result={})  # stopped by Tune before it reported

    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] + [TrialState.FAIL] * 3
    assert trials[0].values == [0.5, 100]
    assert trials[0].user_attrs["device"] == "cpu"
    assert [t.user_attrs.get("fail_reason") for t in trials[1:]] == [
        "NonFiniteLossError: loss became nan", CRASH_REASON, INTERRUPTED_REASON]
    assert [t.user_attrs.get(INTERRUPTED, False) for t in trials] == [False] * 3 + [True]
    for trial, config in zip(trials, configs.values(), strict=True):
        # The architecture is on every trial, failed or not, and is the one the trial ran.
        assert Arch.from_json(trial.user_attrs["arch"]) == Arch.from_json(config["arch"])
        assert trial.user_attrs["arch_str"] == str(Arch.from_json(config["arch"]))
    # The interrupted trial does not use up the budget; the genuine failures do.
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.number for t in budget_trials(study)] == [0, 1, 2]


def test_a_trial_lost_with_its_node_does_not_count(storage: optuna.storages.RDBStorage) -> None:
    search = StudySearch(input_size=16, objectives=OBJECTIVES, study_name="s",
                         sampler=_random(), storage=storage,
                         failure_reason=lambda trial_id: "node lost: Ray node 5f died")
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", result=_result(0.5, 100))
    search.on_trial_complete("b", error=True)
    study = optuna.load_study(study_name="s", storage=storage)
    lost = study.get_trials()[1]
    assert lost.state == TrialState.FAIL and lost.user_attrs[NODE_LOST] is True
    assert lost.user_attrs[WORKER_DIED] is True  # the machine's failure, not its own
    assert lost.user_attrs["fail_reason"] == "node lost: Ray node 5f died"
    # The cluster's failure, not the architecture's: a rerun trains one in its place.
    assert [t.number for t in budget_trials(study)] == [0]


def test_enqueued_preset_runs_first(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = optuna.load_study(study_name="s", storage=storage)
    study.enqueue_trial(preset_params(preset("paper-mix"), 16), user_attrs={"preset": "paper-mix"})
    assert Arch.from_json(search.suggest("a")["arch"]) == preset("paper-mix")


@pytest.mark.parametrize(("params", "named"), [
    ({"bogus": 1}, "'bogus' not in the space"),
    ({"stem": 7}, "stem must be one of (16, 24, 32), got 7"),
])
def test_a_trial_enqueued_outside_the_space_fails_and_the_search_goes_on(
        storage: optuna.storages.RDBStorage, params: dict, named: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    search = _searcher(storage)
    study = optuna.load_study(study_name="s", storage=storage)
    study.enqueue_trial(params)  # a user with Optuna itself, not the search's presets
    config = search.suggest("a")
    bad, sampled = study.get_trials()
    assert bad.state == TrialState.FAIL
    assert bad.user_attrs["fail_reason"] == (
        f"enqueued with params outside the search space: params: {named}")
    assert sampled.state == TrialState.RUNNING
    assert budget_trials(study) == []  # nothing was trained: no trial of the budget spent
    assert Arch.from_json(config["arch"]) == Arch.from_json(sampled.user_attrs["arch"])
    assert capsys.readouterr().err == ("warning: trial 0 enqueued with params outside the search "
                                       f"space: params: {named}; marked FAIL\n")


def test_stale_running_trials_fail_as_interrupted(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", result=_result(0.5, 100))
    # "b" is RUNNING, as a SIGKILLed driver would leave it; a new driver finds it.
    study = optuna.load_study(study_name="s", storage=storage)
    assert fail_interrupted(study, storage) == 1
    b = study.get_trials()[1]
    assert b.state == TrialState.FAIL
    assert b.user_attrs["fail_reason"] == INTERRUPTED_REASON
    assert [t.number for t in budget_trials(study)] == [0]
    assert fail_interrupted(study, storage) == 0


def test_front_is_the_non_dominated_complete_trials(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    for trial_id, (accuracy, params) in zip("abcd", [(0.5, 100), (0.6, 200), (0.4, 300),
                                                     (0.7, 50)], strict=True):
        search.suggest(trial_id)
        search.on_trial_complete(trial_id, result=_result(accuracy, params, arch_str=trial_id))
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.number for t in pareto_front(study)] == [3]
    table = format_front(study)
    assert "Pareto front (1 of 4 trials)" in table
    assert "0.7000" in table and "50" in table


@pytest.mark.parametrize(("name", "kind"), [("nsga2", optuna.samplers.NSGAIISampler),
                                            ("tpe", optuna.samplers.TPESampler),
                                            ("random", optuna.samplers.RandomSampler),
                                            ("tpe-spread", DesignStartupSampler)])
def test_make_sampler(name: str, kind: type) -> None:
    assert isinstance(make_sampler(name, seed=1, trials=16, shape=SHAPE), kind)


def test_the_storage_id_fail_interrupted_writes_by(storage: optuna.storages.RDBStorage) -> None:
    # fail_interrupted writes to trials it did not hand out: through the storage, by the id
    # their study and number have there (Optuna's public lookups).
    study = optuna.create_study(storage=storage, study_name="private")
    asked = study.ask()
    (frozen,) = study.get_trials()
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), frozen.number)
    assert trial_id == asked._trial_id
    storage.set_trial_user_attr(trial_id, "k", 1)
    assert study.get_trials()[0].user_attrs == {"k": 1}
