"""The sampler table: every entry samples the architecture space of a two-objective study."""

from __future__ import annotations

import optuna
import pytest

from search.driver.config import SearchConfig
from search.driver.samplers import DEFAULT_SAMPLER, SAMPLERS, make_sampler, nsga2_population
from space import Arch, sample_arch

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_proposes_architectures(name: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=make_sampler(name, seed=0, trials=8))
    for k in range(12):  # past TPE's 10 random start-up trials and an NSGA-II generation
        trial = study.ask()
        assert isinstance(sample_arch(trial, 16), Arch)
        study.tell(trial, [k / 12, 1000 + k])


def test_nsga2_population_follows_the_budget() -> None:
    assert [nsga2_population(t) for t in (8, 48, 120, 1000)] == [4, 12, 30, 50]


def test_unknown_sampler_and_the_default() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes", seed=0, trials=8)
    assert SearchConfig(dataset="synthetic").sampler == DEFAULT_SAMPLER in SAMPLERS
