"""The sampler table: every entry samples the architecture space of a two-objective study."""

from __future__ import annotations

import optuna
import pytest

from search.driver.config import SearchConfig
from search.driver.samplers import (
    DEFAULT_SAMPLER,
    SAMPLERS,
    make_sampler,
    nsga2_population,
    tpe_startup,
)
from search.driver.startup import DesignStartupSampler
from space import CHOICES, Arch, InputShape, preset, preset_params, sample_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)
SHAPE = InputShape(in_channels=1, input_size=16, num_classes=10)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_proposes_architectures(name: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(name, seed=0, trials=8, shape=SHAPE))
    for k in range(12):  # past TPE's 10 random start-up trials and an NSGA-II generation
        trial = study.ask()
        assert isinstance(sample_arch(trial, 16), Arch)
        study.tell(trial, [k / 12, 1000 + k])


def test_nsga2_population_follows_the_budget() -> None:
    assert [nsga2_population(t) for t in (8, 48, 120, 1000)] == [4, 12, 30, 50]


def _proposals(sampler: optuna.samplers.BaseSampler, count: int) -> list[dict]:
    return _asked(optuna.create_study(directions=["maximize", "minimize"], sampler=sampler),
                  count)


def test_the_short_startup_tpe_guides_after_a_quarter_of_the_budget() -> None:
    assert [tpe_startup(t) for t in (8, 16, 24, 40, 100)] == [4, 4, 6, 10, 10]
    short = _proposals(make_sampler("tpe-short-startup", seed=0, trials=24, shape=SHAPE), 8)
    plain = _proposals(make_sampler("tpe", seed=0, trials=24, shape=SHAPE), 8)
    # Both start with the same random draws; the short start-up leaves them after 6.
    assert short[:6] == plain[:6]
    assert short[6] != plain[6] and short[7] != plain[7]


def test_unknown_sampler_and_the_default() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes", seed=0, trials=8, shape=SHAPE)
    assert SearchConfig(dataset="synthetic").sampler == DEFAULT_SAMPLER in SAMPLERS


def test_design_startup_follows_the_design_then_hands_over() -> None:
    design = [{name: choices[k % len(choices)] for name, choices in CHOICES.items()}
              for k in range(3)]

    def sampler() -> DesignStartupSampler:
        return DesignStartupSampler(design, optuna.samplers.RandomSampler(seed=0))

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler())
    study.enqueue_trial(preset_params(preset("paper-mix"), 16))
    proposals = _asked(study, 3)
    # The enqueued preset is not sampled, so it leaves the design whole.
    assert proposals[0] == preset_params(preset("paper-mix"), 16)
    assert proposals[1:] == design[:2]
    # A new driver (a resumed search) goes on where the design stopped, then hands over.
    study.sampler = sampler()
    proposals = _asked(study, 2)
    assert proposals[0] == design[2]
    assert proposals[1] not in design


def _asked(study: optuna.Study, count: int) -> list[dict]:
    proposals = []
    for k in range(count):
        trial = study.ask()
        sample_arch(trial, 16)
        proposals.append(trial.params)
        study.tell(trial, [k / count, 1000 - k])
    return proposals
