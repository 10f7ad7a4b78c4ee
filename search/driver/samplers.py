"""The samplers a search can use, by name: one table that the CLI, the search and the
search-quality benchmark (``benchmarks/bench_search_quality.py``) all read.

Every sampler sees the same fixed-length categorical encoding (``space.sample``), so all of
them learn from all 53 parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

__all__ = ["DEFAULT_SAMPLER", "SAMPLERS", "Sampler", "make_sampler", "nsga2_population",
           "tpe_startup"]


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
    make: Callable[[int, int], optuna.samplers.BaseSampler]  # (seed, trials) -> sampler


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("random", "uniform random sampling: the baseline",
            lambda seed, trials: optuna.samplers.RandomSampler(seed=seed)),
    Sampler("tpe", "TPE, Optuna 5's defaults (independent per parameter, 10 random "
                   "start-up trials, constant liar for running trials)",
            lambda seed, trials: optuna.samplers.TPESampler(seed=seed)),
    Sampler("tpe-short-startup", "TPE with a quarter of the budget (4..10 trials) as its "
                                 "random start-up",
            lambda seed, trials: optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=tpe_startup(trials))),
    Sampler("tpe-multivariate", "TPE modelling all parameters jointly (multivariate=True)",
            lambda seed, trials: optuna.samplers.TPESampler(seed=seed, multivariate=True)),
    Sampler("nsga2", "NSGA-II, population a quarter of the budget (4..50)",
            lambda seed, trials: optuna.samplers.NSGAIISampler(
                population_size=nsga2_population(trials), seed=seed)),
    Sampler("nsga2-small", "NSGA-II, population an eighth of the budget (4..50): twice "
                           "the generations",
            lambda seed, trials: optuna.samplers.NSGAIISampler(
                population_size=nsga2_population(trials // 2), seed=seed)),
)}

# Chosen by benchmarks/bench_search_quality.py (README, "Search quality"): Fashion-MNIST
# 16x16, 48 trained trials, 3 seeds, final hypervolume mean ± sd: tpe 0.698 ± 0.148,
# tpe-multivariate 0.653 ± 0.079, nsga2 0.617 ± 0.034, random 0.597 ± 0.027. TPE's mean
# reaches random's final mean after 25 trials, random's own after 46: worth 1.84 random
# trials per trial (tpe-multivariate 1.53, nsga2 1.07), short of the 2x goal. Measured at 48
# trials only; at 16 (the quick budget) TPE's first 10 trials are its random start-up.
# Over 5 seeds (--run fmnist-20x5), TPE's mean hypervolume after 20 trials is 0.925 [0.86,
# 0.99] of random's after 40 on the same seeds: ahead of random trial for trial (random's
# own 20 reach 0.819 of its 40), short of 2x.
DEFAULT_SAMPLER = "tpe"


def make_sampler(name: str, *, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (a key of :data:`SAMPLERS`) for a budget of ``trials``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name].make(seed, trials)
