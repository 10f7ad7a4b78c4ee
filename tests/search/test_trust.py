"""How far the proxy ranking can be trusted: rank agreement and its one line."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from search.reporting import trust
from search.reporting.trust import (
    MEASURED_FIDELITY,
    Fidelity,
    proxy_setting,
    rank_agreement,
    trust_line,
)
from search.study.objectives import ACCURACY
from search.study.schema import TEST_ACCURACY

QUICK = proxy_setting("fashion-mnist", {"epochs": 1, "subset": 0.1}, 16)


def table(proxy: list[float | None], test: list[float | None]) -> pd.DataFrame:
    """A trials table as far as the trust module reads it."""
    return pd.DataFrame({"number": range(len(proxy)),
                         ACCURACY.metric: pd.Series(proxy, dtype=float),
                         TEST_ACCURACY: pd.Series(test, dtype=float)})


def test_agreeing_orders_give_exactly_one() -> None:
    # Different scales, same order: ranks are all that count.
    agreement = rank_agreement(table([0.50, 0.60, 0.70, 0.80], [0.81, 0.84, 0.90, 0.93]))
    assert agreement is not None
    assert (agreement.spearman, agreement.kendall, agreement.trials) == (1.0, 1.0, 4)


def test_reversed_orders_give_exactly_minus_one() -> None:
    agreement = rank_agreement(table([0.50, 0.60, 0.70, 0.80], [0.93, 0.90, 0.84, 0.81]))
    assert agreement is not None
    assert (agreement.spearman, agreement.kendall) == (-1.0, -1.0)


def test_only_trials_with_both_accuracies_are_ranked() -> None:
    # Not retrained (no test accuracy) and pruned or failed (no proxy) rows are left out;
    # counted, they would break the perfect agreement of the other three.
    agreement = rank_agreement(table([0.5, 0.6, 0.9, None, 0.7],
                                     [0.81, 0.82, None, 0.99, 0.83]))
    assert agreement is not None
    assert (agreement.spearman, agreement.trials) == (1.0, 3)


def test_one_swapped_pair_of_three() -> None:
    agreement = rank_agreement(table([0.5, 0.6, 0.7], [0.8, 0.9, 0.85]))
    assert agreement is not None
    assert agreement.spearman == pytest.approx(0.5)
    assert agreement.kendall == pytest.approx(1 / 3)


def test_fewer_than_three_retrained_trials_give_none() -> None:
    assert rank_agreement(table([0.5, 0.6, 0.7], [0.8, 0.9, None])) is None
    assert rank_agreement(table([0.5], [None])) is None


def test_a_constant_side_has_no_order() -> None:
    agreement = rank_agreement(table([0.5, 0.5, 0.5], [0.8, 0.9, 0.85]))
    assert agreement is not None and math.isnan(agreement.spearman)
    assert "Spearman undefined" in trust_line(table([0.5, 0.5, 0.5], [0.8, 0.9, 0.85]), QUICK)


def test_line_with_enough_retrained_trials() -> None:
    line = trust_line(table([0.5, 0.6, 0.7, 0.8, 0.9], [0.80, 0.90, 0.85, 0.95, 0.97]), QUICK)
    assert line == ("proxy ranking: Spearman 0.90, Kendall 0.80 over 5 retrained trials "
                    "(proxy val accuracy vs retrained test accuracy)")


def test_line_falls_back_on_the_benchmark_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "MEASURED_FIDELITY",
                        {QUICK: Fidelity(spearman=0.81, low=0.70, high=0.90,
                                           architectures=32)})
    line = trust_line(table([0.5, 0.6, 0.7], [0.8, 0.9, None]), QUICK)
    assert line == ("proxy ranking: not measured in this study (2 retrained trials; retrain "
                    "more with search.export --retrain-epochs); benchmark figure for 1 epoch "
                    "on 10% of fashion-mnist at 16 px: Spearman 0.81 [0.70, 0.90] over 32 "
                    "reference architectures")


def test_line_for_a_budget_nobody_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "MEASURED_FIDELITY",
                        {proxy_setting("fashion-mnist", {"epochs": 1, "subset": 0.03}, 16):
                         Fidelity(0.5, 0.2, 0.7, 16)})
    line = trust_line(table([0.5, 0.6], [0.8, None]), QUICK)
    assert line.startswith("proxy ranking: not measured in this study (1 retrained trial; ")
    assert line.endswith("1 epoch on 10% of fashion-mnist at 16 px: proxy fidelity not measured "
                         "(benchmarks/bench_fidelity.py measures it)")


def test_line_for_a_study_without_a_budget() -> None:
    line = trust_line(table([0.5], [None]), None)
    assert "(0 retrained trials;" in line and "records no training budget" in line


def test_the_setting_is_what_the_trials_trained_not_the_budgets_name() -> None:
    assert proxy_setting("fashion-mnist", {"epochs": 3, "subset": 0.1, "lr": 0.1}, 16) == (
        "3 epochs on 10% of fashion-mnist at 16 px")
    assert QUICK == "1 epoch on 10% of fashion-mnist at 16 px" and QUICK in MEASURED_FIDELITY
    assert proxy_setting("cifar10", {}, 32) is None  # a study from before train configs
