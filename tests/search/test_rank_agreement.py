"""Rank agreement: Spearman, Kendall tau-b, bootstrap intervals and top-k overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.study.rank_agreement import (
    agreement,
    bootstrap_interval,
    kendall,
    spearman,
    top_k_overlap,
)


def test_same_order_is_one_and_reversed_is_minus_one():
    x = [0.1, 0.5, 0.3, 0.9]
    assert spearman(x, [1, 3, 2, 4]) == pytest.approx(1) and kendall(x, [1, 3, 2, 4]) == 1
    assert spearman(x, [4, 2, 3, 1]) == pytest.approx(-1) and kendall(x, [4, 2, 3, 1]) == -1


def test_hand_computed_values_with_ties():
    # One discordant pair of six: tau = (5 - 1) / 6; rho = 1 - 6 * 2 / (4 * 15).
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # tau-b with a tie in y: 5 untied pairs in y, all concordant -> 5 / sqrt(6 * 5).
    assert kendall([1, 2, 3, 4], [1, 2, 2, 3]) == pytest.approx(5 / math.sqrt(30))


def test_constant_or_tiny_scorings_are_undefined():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(kendall([1, 1], [1, 2]))
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError, match="equal-length"):
        spearman([1, 2], [1, 2, 3])


def test_bootstrap_interval_contains_the_estimate_and_is_degenerate_for_a_perfect_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = x + rng.normal(scale=0.7, size=40)
    low, high = bootstrap_interval(spearman, x, y, resamples=500)
    assert low < spearman(x, y) < high and high - low > 0.05
    found = agreement(x, x, resamples=200)
    assert found.count == 40 and found.spearman_interval == pytest.approx((1, 1))
    assert found.kendall == 1 and found.kendall_interval == pytest.approx((1, 1))


def test_top_k_overlap():
    assert top_k_overlap([5, 4, 3, 2, 1], [50, 40, 30, 20, 10], 2) == 1
    assert top_k_overlap([5, 4, 3, 2, 1], [10, 20, 30, 40, 50], 2) == 0
    assert top_k_overlap([5, 4, 3, 2, 1], [50, 10, 40, 20, 30], 3) == pytest.approx(2 / 3)
    assert top_k_overlap([1, 2], [2, 1], 5) == 1  # k beyond the set: the whole set
