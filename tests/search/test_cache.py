"""The evaluation cache: an architecture the study has trained is served, not trained again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.driver import searcher as searcher_module
from search.driver.progress import format_front
from search.driver.searcher import StudySearch
from search.study.evaluation_cache import EvaluationCache
from search.study.objectives import objectives_from_names
from search.study.schema import ARCH, ARCH_STR, ATTRS_KEY, CACHED_FROM, FAIL_KEY, budget_trials
from space import Arch, preset, preset_params

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJECTIVES = objectives_from_names(("accuracy", "params"))
MIX = preset("paper-mix")


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")


def _searcher(storage: optuna.storages.BaseStorage,
              cache: EvaluationCache | None = None) -> StudySearch:
    return StudySearch(input_size=16, objectives=OBJECTIVES, study_name="s",
                       sampler=optuna.samplers.RandomSampler(seed=0), storage=storage,
                       cache=cache)


def _enqueue(storage: optuna.storages.BaseStorage, *archs: Arch) -> optuna.Study:
    study = optuna.load_study(study_name="s", storage=storage)
    for arch in archs:
        study.enqueue_trial(preset_params(arch, 16))
    return study


def _trained(accuracy: float = 0.7, params: int = 353_430) -> dict:
    """What the trainable reports for a trained trial."""
    attrs = {"params": params, "macs": 1000, "device": "cpu", "seed": 0,
             "train_seconds": 12.5, "wall_seconds": 13.0, "val_accuracy_per_epoch": [accuracy]}
    return {"val_accuracy": accuracy, "params": params, ATTRS_KEY: json.dumps(attrs)}


def test_a_duplicate_is_served_from_the_cache(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = _enqueue(storage, MIX, MIX)
    handed_to_tune = [search.suggest("a")]  # every config handed out is one training
    search.on_trial_complete("a", result=_trained())
    handed_to_tune.append(search.suggest("b"))

    trained, duplicate, next_one = study.get_trials()
    handed_archs = [Arch.from_json(config["arch"]) for config in handed_to_tune]
    assert handed_archs[0] == MIX
    assert handed_archs[1] != MIX  # the duplicate was never handed out
    assert Arch.from_json(duplicate.user_attrs["arch"]) == MIX
    assert duplicate.state == TrialState.COMPLETE
    assert duplicate.values == trained.values == [0.7, 353_430]
    assert duplicate.user_attrs[CACHED_FROM] == trained.number
    assert duplicate.user_attrs["train_seconds"] == 0.0
    assert duplicate.user_attrs["wall_seconds"] < 1.0  # the serving itself, after the ask
    assert duplicate.user_attrs["params"] == 353_430
    assert next_one.state == TrialState.RUNNING  # what "b" trains instead
    # Duplicates cost no training and do not use up the budget.
    assert [t.number for t in budget_trials(study)] == [trained.number]


def test_fields_a_block_ignores_do_not_make_a_new_architecture(
        storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = _enqueue(storage, MIX)
    btn = next(i for i, s in enumerate(MIX.stages) if s.op == "btn")
    params = {**preset_params(MIX, 16), f"stage{btn}.r": 32, f"stage{btn}.cap": 4}
    assert params != preset_params(MIX, 16)
    study.enqueue_trial(params)
    search.suggest("a")
    search.on_trial_complete("a", result=_trained())
    search.suggest("b")
    assert study.get_trials()[1].user_attrs[CACHED_FROM] == 0


def test_another_string_of_a_trained_network_is_served_and_keeps_its_own_string(
        storage: optuna.storages.RDBStorage) -> None:
    # At 16 px paper-mix's stage 6 runs at 4x4: r 16 and r 32 both give a width-1 attention.
    variant = replace(MIX, stages=(*MIX.stages[:5], replace(MIX.stages[5], r=32),
                                   MIX.stages[6]))
    assert variant != MIX
    search = _searcher(storage)
    study = _enqueue(storage, MIX, variant)
    search.suggest("a")
    search.on_trial_complete("a", result=_trained())
    assert Arch.from_json(search.suggest("b")["arch"]) not in (MIX, variant)  # served
    trained, duplicate, _ = study.get_trials()
    assert duplicate.state == TrialState.COMPLETE and duplicate.values == trained.values
    assert duplicate.user_attrs[CACHED_FROM] == 0
    assert Arch.from_json(duplicate.user_attrs[ARCH]) == variant
    assert duplicate.user_attrs[ARCH_STR] == str(variant) != trained.user_attrs[ARCH_STR]
    table = format_front(study).splitlines()
    assert table[2].split()[0] == "#0" and table[3].split()[0] == "#1=#0"  # after the header


def test_a_rerun_recognises_the_earlier_trials(storage: optuna.storages.RDBStorage) -> None:
    first = _searcher(storage)
    study = _enqueue(storage, MIX)
    first.suggest("a")
    first.on_trial_complete("a", result=_trained())
    # A new driver (a resumed search) rebuilds the cache from the study.
    _enqueue(storage, MIX)
    resumed = _searcher(storage, EvaluationCache.from_trials(study.get_trials(), 16))
    assert Arch.from_json(resumed.suggest("b")["arch"]) != MIX
    duplicate = study.get_trials()[1]
    assert duplicate.user_attrs[CACHED_FROM] == 0
    # A duplicate is not a cache entry of its own: the trained trial stays the source.
    assert EvaluationCache.from_trials(study.get_trials(), 16).lookup(MIX).number == 0


def test_failed_trials_are_not_cached(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = _enqueue(storage, MIX, MIX)
    search.suggest("a")
    search.on_trial_complete("a", result={"val_accuracy": float("nan"), "params": float("nan"),
                                          FAIL_KEY: "OutOfMemoryError: CUDA out of memory"})
    assert Arch.from_json(search.suggest("b")["arch"]) == MIX  # tried again
    assert CACHED_FROM not in study.get_trials()[1].user_attrs


def test_a_sampler_that_only_repeats_itself_ends_the_search(
        storage: optuna.storages.RDBStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searcher_module, "MAX_UNTRAINED_IN_A_ROW", 2)
    searcher = _searcher(storage)
    _enqueue(storage, MIX, MIX, MIX, MIX)
    searcher.suggest("a")
    searcher.on_trial_complete("a", result=_trained())
    with pytest.warns(UserWarning, match="3 architectures in a row that were trained already;"):
        assert searcher.suggest("b") == "FINISHED"


def test_served_attrs_keep_what_describes_the_architecture() -> None:
    cache = EvaluationCache(16)
    arch = replace(MIX, stem=16)
    cache.add(arch, 3, [0.5, 10.0], {"params": 10, "preset": "x", "train_seconds": 9.0})
    cache.add(arch, 7, [0.9, 10.0], {})  # a later trial never replaces the first
    hit = cache.lookup(arch)
    assert (hit.number, hit.values) == (3, (0.5, 10.0))
    assert hit.served_attrs() == {"params": 10, CACHED_FROM: 3, "train_seconds": 0.0}
    assert cache.lookup(MIX) is None and len(cache) == 1
