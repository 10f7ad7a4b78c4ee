"""``--max-params``: sampled architectures over the cap are pruned untrained, the presets are
not, the budget does not count them, and tpe-spread's start-up stays under the cap."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search import report
from search.driver import searcher as searcher_module
from search.driver.config import parse_config
from search.driver.samplers import make_sampler
from search.driver.searcher import SizeCap, StudySearch, check_size_cap
from search.study.objectives import objectives_from_names
from search.study.results import load_results
from search.study.schema import OVER_MAX_PARAMS, PRESET, budget_trials
from space import Arch, InputShape, preset, preset_params, sample_arch
from space.footprint import network_footprint
from space.smallest import smallest_arch
from tests.search.studies import ROWS, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
SHAPE = InputShape(in_channels=1, input_size=16, num_classes=10)
MIX, MOBILENET = preset("paper-mix"), preset("mobilenetv2")
CAP = 1_000_000  # between paper-mix (~0.3M here) and MobileNetV2 (~2.2M)


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")


def _searcher(storage: optuna.storages.BaseStorage, cap: int = CAP) -> StudySearch:
    return StudySearch(input_size=16, objectives=objectives_from_names(("accuracy", "params")),
                       study_name="s", sampler=optuna.samplers.RandomSampler(seed=0),
                       storage=storage, size_cap=SizeCap(cap, SHAPE))


def _params(arch: Arch) -> int:
    return network_footprint(arch, SHAPE).params


def test_the_cap_lies_between_the_presets() -> None:
    assert _params(MIX) < CAP < _params(MOBILENET)


def test_a_sampled_proposal_over_the_cap_is_pruned_untrained(
        storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = optuna.load_study(study_name="s", storage=storage)
    study.enqueue_trial(preset_params(MOBILENET, 16))  # params given, but no preset: sampled
    study.enqueue_trial(preset_params(MIX, 16))
    config = search.suggest("a")

    over, handed = study.get_trials()
    assert Arch.from_json(config["arch"]) == MIX  # Tune never saw MobileNetV2
    assert over.state == TrialState.PRUNED
    assert over.user_attrs[OVER_MAX_PARAMS] == CAP
    assert over.user_attrs["params"] == _params(MOBILENET)
    assert Arch.from_json(over.user_attrs["arch"]) == MOBILENET
    assert handed.state == TrialState.RUNNING
    assert budget_trials(study) == []  # the pruned proposal cost nothing and counts nothing


def test_a_preset_over_the_cap_is_trained(storage: optuna.storages.RDBStorage) -> None:
    search = _searcher(storage)
    study = optuna.load_study(study_name="s", storage=storage)
    study.enqueue_trial(preset_params(MOBILENET, 16), user_attrs={PRESET: "mobilenetv2"})
    assert Arch.from_json(search.suggest("a")["arch"]) == MOBILENET
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]


def test_a_cap_no_architecture_fits_ends_the_search(
        storage: optuna.storages.RDBStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searcher_module, "MAX_UNTRAINED_IN_A_ROW", 2)
    search = _searcher(storage, cap=1)
    with pytest.warns(UserWarning, match="trained already or over --max-params 1;"):
        assert search.suggest("a") == "FINISHED"
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.PRUNED] * 3


def _start_up_sizes(cap: int | None) -> list[int]:
    sampler = make_sampler("tpe-spread", seed=0, trials=32, shape=SHAPE, max_params=cap)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    sizes = []
    for _ in range(10):
        trial = study.ask()
        sizes.append(_params(sample_arch(trial, 16)))
        study.tell(trial, [0.5, sizes[-1]])
    return sizes


def test_tpe_spread_starts_up_under_the_cap() -> None:
    capped, uncapped = _start_up_sizes(400_000), _start_up_sizes(None)
    assert max(capped) <= 400_000 < max(uncapped)
    assert min(capped) < 150_000  # still spread: the small end is kept


def test_the_report_counts_proposals_over_the_cap_apart_from_pruned_trials(
        tmp_path: Path) -> None:
    study = make_study(f"sqlite:///{tmp_path / 'r.db'}")
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "arch": MOBILENET.to_json(indent=None), "arch_str": str(MOBILENET),
        "params": 2_296_922, OVER_MAX_PARAMS: CAP}))
    results = load_results(study)
    assert list(results.oversized["number"]) == [len(ROWS)]
    assert results.pruned.empty
    assert results.trials.loc[len(ROWS), "params"] == 2_296_922
    lines = report.summary_lines(results)
    assert "over --max-params (1,000,000): 1 proposal(s) not trained" in lines
    assert not any(line.startswith("pruned:") for line in lines)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_params_must_be_positive(value: str) -> None:
    with pytest.raises(ValueError, match="max-params"):
        parse_config(["--dataset", "synthetic", "--max-params", value])


def test_a_cap_below_the_smallest_network_of_the_space_is_refused_at_its_size() -> None:
    smallest = network_footprint(smallest_arch(SHAPE), SHAPE).params
    check_size_cap(smallest, SHAPE)  # that network fits: the search can train it
    with pytest.raises(ValueError, match=f"--max-params {smallest - 1:,} is below the smallest "
                                         f"network of the search space on 1x16x16 inputs "
                                         f"\\({smallest:,} parameters: stem"):
        check_size_cap(smallest - 1, SHAPE)
