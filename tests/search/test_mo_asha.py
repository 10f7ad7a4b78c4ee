"""MO-ASHA's ranking core on hand-made vectors (minimised: -accuracy, log10 params, ...)."""

from __future__ import annotations

import numpy as np
import pytest

from search.driver.mo_asha import continues, rank_order, rung_epochs
from search.study.pareto import non_dominated_ranks


@pytest.mark.parametrize(("min_epochs", "eta", "max_epochs", "rungs"), [
    (1, 3, 15, (1, 3, 9)),
    (1, 3, 9, (1, 3)),  # 9 is the full budget: a trial there is complete, not compared
    (1, 2, 8, (1, 2, 4)),
    (2, 2, 9, (2, 4, 8)),
    (1, 3, 1, ()),
    (5, 3, 5, ()),
])
def test_rungs_sit_at_min_epochs_times_powers_of_eta_below_the_budget(
        min_epochs: int, eta: int, max_epochs: int, rungs: tuple[int, ...]) -> None:
    assert rung_epochs(min_epochs, eta, max_epochs) == rungs


@pytest.mark.parametrize(("min_epochs", "eta"), [(0, 3), (1, 1)])
def test_rungs_refuse_a_zero_first_rung_and_eta_below_two(min_epochs: int, eta: int) -> None:
    # The flags' messages: rung_epochs and SchedulerSpec share the one check.
    with pytest.raises(ValueError, match=r"min-epochs must be a positive integer|"
                                         r"reduction-factor must be >= 2"):
        rung_epochs(min_epochs, eta, 9)


def test_front_ranks_peel_non_dominated_fronts() -> None:
    points = np.array([[-0.9, 6.0],   # front 0: most accurate
                       [-0.5, 4.0],   # front 0: smallest
                       [-0.8, 6.5],   # front 1: beaten by the first
                       [-0.4, 6.6],   # front 2: beaten by the one above
                       [-0.7, 5.0]])  # front 0: between the two
    assert non_dominated_ranks(points).tolist() == [0, 0, 1, 2, 0]


def test_a_dominated_point_ranks_after_every_point_of_a_better_front() -> None:
    points = np.array([[-0.6, 5.0], [-0.9, 6.0], [-0.5, 4.0], [-0.55, 5.5]])
    order = rank_order(points)
    assert order[-1] == 3  # dominated by point 0
    assert set(order[:3]) == {0, 1, 2}


def test_within_a_front_the_eps_net_starts_at_the_most_accurate_and_spreads_out() -> None:
    # One front along a line; after the most accurate end, the farthest point is the
    # other end, then the middle; the two points crowded next to the ends come last.
    points = np.array([[-0.50, 4.0],    # 0: smallest end
                       [-0.70, 5.0],    # 1: middle
                       [-0.90, 6.0],    # 2: most accurate end
                       [-0.88, 5.9],    # 3: next to 2
                       [-0.52, 4.1]])   # 4: next to 0
    order = rank_order(points)
    assert order[:3] == [2, 0, 1] and set(order[3:]) == {3, 4}


def test_ties_go_to_the_point_recorded_first() -> None:
    # Symmetric about the first pick: both candidates are equally far from it.
    points = np.array([[-0.8, 5.0], [-0.6, 4.0], [-0.6, 4.0]])
    assert rank_order(points) == [0, 1, 2]
    assert rank_order(points[[0, 2, 1]]) == [0, 1, 2]  # whichever of the twins came first


def test_a_duplicate_ranks_after_its_earlier_twin_and_after_distinct_points() -> None:
    points = np.array([[-0.9, 6.0], [-0.5, 4.0], [-0.9, 6.0], [-0.7, 5.0]])
    order = rank_order(points)
    assert order.index(0) < order.index(2)
    assert order[-1] == 2  # at distance 0 from what is already taken


def test_all_equal_points_rank_in_arrival_order() -> None:
    assert rank_order(np.tile([-0.5, 5.0], (4, 1))) == [0, 1, 2, 3]


def test_three_objectives() -> None:
    # -accuracy, log10 params, log10 MACs.
    points = np.array([[-0.90, 6.0, 8.0],   # 0: most accurate
                       [-0.60, 5.0, 7.0],   # 1: cheapest in both costs
                       [-0.70, 6.0, 6.5],   # 2: fewest MACs at fair accuracy: front 0
                       [-0.60, 5.5, 7.5],   # 3: dominated by 1
                       [-0.85, 6.1, 8.1]])  # 4: dominated by 0
    assert non_dominated_ranks(points).tolist() == [0, 0, 0, 1, 1]
    order = rank_order(points)
    assert order[0] == 0 and set(order[:3]) == {0, 1, 2} and set(order[3:]) == {3, 4}


@pytest.mark.parametrize("bad", [np.empty((0, 2)), np.array([1.0, 2.0]),
                                 np.array([[np.nan, 1.0]])])
def test_rank_order_refuses_empty_flat_or_non_finite_points(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="points must be"):
        rank_order(bad)


def _decisions(points: list[list[float]], eta: int) -> list[bool]:
    """Each arrival's decision against all arrivals before it and itself."""
    return [continues(np.array(points[:k + 1]), eta) for k in range(len(points))]


def test_eta_3_keeps_the_top_third_of_the_rung_as_trials_arrive() -> None:
    # Constant params: accuracy alone orders the rung.
    accuracies = [0.50, 0.60, 0.40, 0.70, 0.55, 0.65, 0.30]
    points = [[-a, 5.0] for a in accuracies]
    # n=1 first goes on; n=2: 0.60 is best; n=3: 0.40 is 3rd (3rd * 3 >= 3); n=4: 0.70
    # best; n=5: 0.55 is 4th of 5; n=6: 0.65 2nd of 6 (1*3 < 6); n=7: 0.30 last.
    assert _decisions(points, 3) == [True, True, False, True, False, True, False]


def test_eta_2_keeps_the_top_half() -> None:
    accuracies = [0.50, 0.40, 0.60, 0.45, 0.55]
    points = [[-a, 5.0] for a in accuracies]
    # n=2: 0.40 2nd (1*2 >= 2); n=3: 0.60 1st; n=4: 0.45 3rd (2*2 >= 4); n=5: 0.55 2nd (2 < 5).
    assert _decisions(points, 2) == [True, False, True, False, True]


def test_a_cheaper_trial_goes_on_although_it_is_less_accurate() -> None:
    # Two trials on the front: with eta 2 and two recorded, only rank 0 goes on, the most
    # accurate; a third, far cheaper trial joins the front and is spread out from it.
    rung = [[-0.80, 6.0], [-0.79, 6.0]]
    assert not continues(np.array(rung), 2)  # dominated: same size, less accurate
    rung.append([-0.60, 4.0])
    assert continues(np.array(rung), 2)  # on the front, second in the eps-net: 1*2 < 3


def test_a_duplicate_arrival_is_stopped_where_its_twin_went_on() -> None:
    rung = [[-0.5, 5.0], [-0.7, 5.0], [-0.7, 5.0]]
    assert continues(np.array(rung[:2]), 3)  # the first 0.7 is best of two
    assert not continues(np.array(rung), 3)  # its twin is 2nd of 3: 1*3 >= 3
    better = [[-0.5, 5.0], [-0.7, 5.0], [-0.8, 5.0]]
    assert continues(np.array(better), 3)  # where a better newcomer would go on
