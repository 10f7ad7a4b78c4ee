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


def _proposals(sampler: optuna.samplers.BaseSampler, count: int) -> list[dict]:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    proposals = []
    for k in range(count):
        trial = study.ask()
        sample_arch(trial, 16)
        proposals.append(trial.params)
        study.tell(trial, [k / count, 1000 - k])
    return proposals


def test_the_short_startup_tpe_guides_after_a_quarter_of_the_budget() -> None:
    assert [tpe_startup(t) for t in (8, 16, 24, 40, 100)] == [4, 4, 6, 10, 10]
    short = _proposals(make_sampler("tpe-short-startup", seed=0, trials=24), 8)
    plain = _proposals(make_sampler("tpe", seed=0, trials=24), 8)
    # Both start with the same random draws; the short start-up leaves them after 6.
    assert short[:6] == plain[:6]
    assert short[6] != plain[6] and short[7] != plain[7]


def test_unknown_sampler_and_the_default() -> None:
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes", seed=0, trials=8)
    assert SearchConfig(dataset="synthetic").sampler == DEFAULT_SAMPLER in SAMPLERS
