"""How far a search's proxy ranking can be trusted.

The search ranks architectures by a cheap proxy: validation accuracy after a short
training. Retraining front members (``search.export --retrain-epochs``) measures what the
proxy stands for, test accuracy after a full training, so the study itself can say how
well the two orders agree. Until a study has retrained enough trials, the benchmark's
measurement for the study's budget (:data:`MEASURED_FIDELITY`) is the best figure there
is. No torch, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from search.study.objectives import ACCURACY
from search.study.rank_agreement import kendall, spearman
from search.study.schema import TEST_ACCURACY

__all__ = ["FIDELITY_BENCHMARK", "MEASURED_FIDELITY", "MIN_RANKED", "Fidelity", "RankAgreement",
           "proxy_setting", "rank_agreement", "retrained", "trust_line"]

# Two points always agree perfectly or not at all; three is the least that says anything.
MIN_RANKED = 3
FIDELITY_BENCHMARK = "benchmarks/bench_fidelity.py"


@dataclass(frozen=True)
class Fidelity:
    """A budget's proxy fidelity as the benchmark measured it against reference
    architectures trained in full."""

    spearman: float
    low: float  # bootstrap 95% interval of ``spearman``
    high: float
    architectures: int  # reference architectures it was measured on


def proxy_setting(dataset: str, train_config: Mapping[str, Any], input_size: int) -> str | None:
    """The key of :data:`MEASURED_FIDELITY` for a study: what its trials trained (epochs,
    share of the training split) on which dataset at which input size, since a proxy's
    fidelity holds for that alone, whatever the budget was called when it ran. None when
    the study's train config does not say (studies from before it was recorded)."""
    epochs, subset = train_config.get("epochs"), train_config.get("subset")
    if not isinstance(epochs, int) or not isinstance(subset, int | float):
        return None
    return (f"{epochs} epoch{'' if epochs == 1 else 's'} on {subset * 100:.4g}% of {dataset} at "
            f"{input_size} px")


# proxy_setting(...) -> its measured fidelity. Filled only from runs of FIDELITY_BENCHMARK
# (README, "Proxy fidelity"): a setting without a measurement says so rather than borrow one.
# All: benchmarks/bench_fidelity.py --run fmnist-16 against the architectures of
# benchmarks/reference/fashion-mnist-16.csv (seed 0).
def _fashion_mnist(epochs: int, subset: float, input_size: int) -> str | None:
    return proxy_setting("fashion-mnist", {"epochs": epochs, "subset": subset}, input_size)


MEASURED_FIDELITY: dict[str, Fidelity] = {
    _fashion_mnist(1, 0.03, 28): Fidelity(0.022, -0.33, 0.38, 34),  # smoke
    _fashion_mnist(1, 0.10, 28): Fidelity(0.540, 0.28, 0.73, 34),  # quick until now
    _fashion_mnist(1, 0.015, 16): Fidelity(0.480, 0.14, 0.72, 34),  # bench_search_quality
    _fashion_mnist(1, 0.10, 16): Fidelity(0.763, 0.52, 0.90, 34),  # make search
    _fashion_mnist(1, 0.20, 16): Fidelity(0.729, 0.47, 0.89, 34),
    _fashion_mnist(2, 0.10, 16): Fidelity(0.685, 0.40, 0.89, 34),
    _fashion_mnist(3, 0.10, 16): Fidelity(0.863, 0.73, 0.93, 34),
    _fashion_mnist(1, 0.30, 16): Fidelity(0.895, 0.77, 0.95, 34),  # quick
}


@dataclass(frozen=True)
class RankAgreement:
    """Rank correlation of proxy and retrained accuracy; NaN where one side is constant
    (every pair tied, so there is no order to compare)."""

    spearman: float
    kendall: float
    trials: int

    def text(self) -> str:
        """``Spearman 0.83, Kendall 0.67``, as the line and the figure's title say it."""
        return f"Spearman {_number(self.spearman)}, Kendall {_number(self.kendall)}"


def retrained(trials: pd.DataFrame) -> pd.DataFrame:
    """Rows of a trials table (:class:`search.study.results.StudyResults`) that have both a
    proxy accuracy and a retrained test accuracy."""
    return trials.dropna(subset=[ACCURACY.metric, TEST_ACCURACY])


def rank_agreement(trials: pd.DataFrame) -> RankAgreement | None:
    """Spearman's rho and Kendall's tau-b of proxy against retrained accuracy over the
    retrained trials; None with fewer than :data:`MIN_RANKED` of them."""
    pairs = retrained(trials)[[ACCURACY.metric, TEST_ACCURACY]].astype(float)
    if len(pairs) < MIN_RANKED:
        return None
    proxy, final = pairs[ACCURACY.metric], pairs[TEST_ACCURACY]
    return RankAgreement(spearman=spearman(proxy, final), kendall=kendall(proxy, final),
                         trials=len(pairs))


def _number(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.2f}"


def _trials(count: int) -> str:
    return f"{count} retrained trial" + ("" if count == 1 else "s")


def _benchmark_text(setting: str | None) -> str:
    if setting is None:
        return ("the study records no training budget (epochs, subset) to look up a "
                "benchmark figure for")
    fidelity = MEASURED_FIDELITY.get(setting)
    if fidelity is None:
        return (f"{setting}: proxy fidelity not measured ({FIDELITY_BENCHMARK} "
                "measures it)")
    return (f"benchmark figure for {setting}: Spearman {_number(fidelity.spearman)} "
            f"[{_number(fidelity.low)}, {_number(fidelity.high)}] over "
            f"{fidelity.architectures} reference architectures")


def trust_line(trials: pd.DataFrame, setting: str | None) -> str:
    """One terminal line: the study's own rank agreement where it has enough retrained
    trials, otherwise the benchmark's figure for the study's ``setting`` (:func:`proxy_setting`)."""
    agreement = rank_agreement(trials)
    if agreement is not None:
        return (f"proxy ranking: {agreement.text()} over {_trials(agreement.trials)} "
                "(proxy val accuracy vs retrained test accuracy)")
    return (f"proxy ranking: not measured in this study ({_trials(len(retrained(trials)))}; "
            f"retrain more with search.export --retrain-epochs); {_benchmark_text(setting)}")
