"""The samplers a search can use, by name: one table that the CLI, the search and the
search-quality benchmark (``benchmarks/bench_search_quality.py``) all read.

Every sampler sees the same fixed-length categorical encoding (``space.sample``), so all of
them learn from all 53 parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

from search.driver.repeats import RepeatsPrunedSampler
from search.driver.rung_values import RungValuesSampler
from search.driver.startup import DesignStartupSampler
from search.study.objectives import REFERENCE_PRESET
from space import InputShape, preset
from space.footprint import network_footprint
from space.spread import size_spread

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "Sampler", "make_sampler", "nsga2_population",
           "tpe_spread", "tpe_startup"]


def nsga2_population(trials: int) -> int:
    """About four generations within the budget, but never a population so small that
    crossover has nothing to mix (4) nor so large that a long search never evolves (50)."""
    return max(4, min(50, trials // 4))


def tpe_startup(trials: int) -> int:
    """Random start-up trials for a budget: a quarter of it, between 4 and TPE's default 10,
    so that a short search spends most of its trials guided (Optuna's 10 are 62% of 16)."""
    return max(4, min(10, trials // 4))


@dataclass(frozen=True)
class Sampler:
    """A named sampler: what it is, and how to make one for a seed and a trial budget."""

    name: str
    description: str
    # (seed, trials, shape, max_params): max_params is --max-params, None without a cap
    make: Callable[[int, int, InputShape, int | None], optuna.samplers.BaseSampler]


TPE_STARTUP = 10  # Optuna's default n_startup_trials


def tpe_spread(seed: int, shape: InputShape, max_params: int | None,
               wrapper: type[RepeatsPrunedSampler] | None = None) -> DesignStartupSampler:
    """TPE whose 10 start-up trials are spread over log(parameters) up to the hypervolume's
    reference network (``space.spread``): the objective's whole range, or up to
    ``max_params`` if that is smaller. Uniform draws on 16x16 Fashion-MNIST fall under 200k
    parameters one time in 100, and over the reference (where they add no hypervolume) one
    time in five. ``wrapper``: the sampler TPE is wrapped in, which shows it the study its
    own way (:mod:`search.driver.repeats`, :mod:`search.driver.rung_values`)."""
    upper = network_footprint(preset(REFERENCE_PRESET), shape).params
    if max_params is not None:
        upper = min(upper, max_params)
    tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP)
    return DesignStartupSampler(size_spread(TPE_STARTUP, shape=shape, upper=upper, seed=seed),
                                tpe if wrapper is None else wrapper(tpe))


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("random", "uniform random sampling: the baseline",
            lambda seed, trials, shape, cap: optuna.samplers.RandomSampler(seed=seed)),
    Sampler("tpe", "TPE, Optuna 5's defaults (independent per parameter, 10 random "
                   "start-up trials, constant liar for running trials)",
            lambda seed, trials, shape, cap: optuna.samplers.TPESampler(seed=seed)),
    Sampler("tpe-spread", "TPE after 10 start-up trials spread evenly over log(parameters) "
                          "up to the reference network's",
            lambda seed, trials, shape, cap: tpe_spread(seed, shape, cap)),
    Sampler("tpe-spread-novel", "tpe-spread whose TPE sees a re-proposed network's cached "
                                "copies as pruned trials, so it moves on from it",
            lambda seed, trials, shape, cap: tpe_spread(seed, shape, cap,
                                                        wrapper=RepeatsPrunedSampler)),
    Sampler("tpe-spread-rungs", "tpe-spread-novel whose TPE scores every trial at the "
                                "highest mo-asha rung that 10 trials reached, so it learns "
                                "from the stopped ones too (BOHB's rule)",
            lambda seed, trials, shape, cap: tpe_spread(seed, shape, cap,
                                                        wrapper=RungValuesSampler)),
    Sampler("tpe-short-startup", "TPE with a quarter of the budget (4..10 trials) as its "
                                 "random start-up",
            lambda seed, trials, shape, cap: optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=tpe_startup(trials))),
    Sampler("tpe-multivariate", "TPE modelling all parameters jointly (multivariate=True)",
            lambda seed, trials, shape, cap: optuna.samplers.TPESampler(seed=seed,
                                                                   multivariate=True)),
    Sampler("nsga2", "NSGA-II, population a quarter of the budget (4..50)",
            lambda seed, trials, shape, cap: optuna.samplers.NSGAIISampler(
                population_size=nsga2_population(trials), seed=seed)),
    Sampler("nsga2-small", "NSGA-II, population an eighth of the budget (4..50): twice "
                           "the generations",
            lambda seed, trials, shape, cap: optuna.samplers.NSGAIISampler(
                population_size=nsga2_population(trials // 2), seed=seed)),
)}

# Chosen by benchmarks/bench_search_quality.py (README, "Search quality"), Fashion-MNIST
# 16x16, 1 epoch on 1.5%, 5 seeds: mean hypervolume after 20 trials / random's after 40 on
# the same seeds, 95% bootstrap interval over seeds: tpe-spread 1.238 [1.092, 1.372] (per
# seed 1.14, 1.46, 1.00, 1.36, 1.28; --run spread-20x5), plain tpe 0.925 [0.86, 0.99]
# (--run fmnist-20x5); at make search's setting (1 epoch on 10%, presets first), tpe-spread
# 1.116 [1.016, 1.236] (--run spread-20x10), plain tpe 0.973 [0.897, 1.058]
# (samplers-20x10). Plain TPE had beaten tpe-multivariate, nsga2 and random over 3
# seeds x 48 trials (worth 1.84 random trials per trial; tpe-multivariate 1.53, nsga2
# 1.07); its random start-up, half of a 20-trial budget, mostly drew networks far larger
# than the front's.
DEFAULT_SAMPLER = "tpe-spread"


def make_sampler(name: str, *, seed: int, trials: int, shape: InputShape,
                 max_params: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (a key of :data:`SAMPLERS`) for a budget of ``trials`` on
    inputs of ``shape``, where networks over ``max_params`` parameters are not trained."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name].make(seed, trials, shape, max_params)
