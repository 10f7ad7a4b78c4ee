from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.study import StudyDirection

from search.study.pareto import (
    hypervolume,
    hypervolume_contributions,
    hypervolume_history,
    non_dominated_ranks,
    pareto_mask,
    to_minimisation,
)

STAIRS = [[1, 3], [2, 2], [3, 1]]  # with reference (4, 4): boxes of 3 + 2 + 1 = 6


def brute_force_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over every subset: exponential, obviously right."""
    boxes = [p for p in points if (p < ref).all()]
    total = 0.0
    for size in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(ref - corner)
    return total


MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE


def test_to_minimisation_negates_maximised_columns():
    values = np.array([[0.9, 100.0], [0.5, 10.0]])
    assert to_minimisation(values, [MAX, MIN]).tolist() == [[-0.9, 100.0],
                                                                          [-0.5, 10.0]]
    assert to_minimisation([0.0, 5.0], [MAX, MIN]).tolist() == [0.0, 5.0]


@pytest.mark.parametrize("directions", [[MAX], ["up", MIN], [StudyDirection.NOT_SET, MIN]])
def test_to_minimisation_rejects_bad_directions(directions):
    with pytest.raises(ValueError, match="direction"):
        to_minimisation([[1.0, 2.0]], directions)


def test_ranks_peel_fronts_and_duplicates_share_a_rank():
    points = [[1, 4], [2, 2], [4, 1], [3, 3], [4, 4], [2, 2]]
    assert non_dominated_ranks(points).tolist() == [0, 0, 0, 1, 2, 0]
    assert pareto_mask(points).tolist() == [True, True, True, False, False, True]


def test_a_tie_in_one_objective_is_decided_by_the_other():
    assert pareto_mask([[1, 2], [1, 3], [0, 5]]).tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("points", "ref", "expected"),
    [
        (STAIRS, [4, 4], 6.0),
        ([*STAIRS, [1, 3]], [4, 4], 6.0),  # a duplicate adds nothing
        ([*STAIRS, [3, 3]], [4, 4], 6.0),  # nor does a dominated point
        ([*STAIRS, [5, 0], [4, 0]], [4, 4], 6.0),  # beyond or on the reference: nothing
        ([[1, 2], [1, 3]], [3, 4], 4.0),  # equal x: the better y counts once
        ([[5, 5]], [4, 4], 0.0),
        ([[0, 0, 0]], [1, 2, 3], 6.0),
        ([[0, 0, 1], [1, 1, 0]], [2, 2, 2], 5.0),  # 4 + 2 - overlap 1
        ([[0, 0, 1], [0, 0, 1], [1, 1, 1]], [2, 2, 2], 4.0),
        ([[1.0], [3.0]], [4.0], 3.0),
    ],
)
def test_hypervolume_by_hand(points, ref, expected):
    assert hypervolume(points, ref) == pytest.approx(expected)


def test_hypervolume_of_nothing_is_zero():
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0


@pytest.mark.parametrize(
    ("points", "ref", "message"),
    [
        ([1, 2], [3, 3], "2-D"),
        ([[1, np.nan]], [3, 3], "finite"),
        ([[1, 2]], [3, 3, 3], "reference"),
        ([[1, 2]], [3, np.inf], "reference"),
    ],
)
def test_hypervolume_rejects_bad_input(points, ref, message):
    with pytest.raises(ValueError, match=message):
        hypervolume(points, ref)


def test_contributions_by_hand():
    # Each stair step owns a unit square; the duplicate and the dominated point own nothing.
    points = [*STAIRS, [2, 2], [3, 3]]
    assert hypervolume_contributions(points, [4, 4]).tolist() == pytest.approx(
        [1, 0, 1, 0, 0])
    assert hypervolume_contributions(STAIRS, [4, 4]).tolist() == pytest.approx([1, 1, 1])


def test_history_follows_the_given_order():
    assert hypervolume_history([[3, 3], [1, 3], [2, 2]], [4, 4]).tolist() == pytest.approx(
        [1, 3, 5])


def point_sets(dims: int, max_size: int = 7):
    # Small integers make ties and duplicates common, which is where sweeps go wrong.
    return st.lists(st.lists(st.integers(0, 5), min_size=dims, max_size=dims),
                    min_size=1, max_size=max_size).map(lambda p: np.array(p, dtype=float))


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 3).flatmap(point_sets))
def test_hypervolume_matches_inclusion_exclusion(points):
    ref = np.full(points.shape[1], 6.0)
    assert hypervolume(points, ref) == pytest.approx(brute_force_hypervolume(points, ref))


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 3).flatmap(point_sets), st.data())
def test_adding_a_point_never_lowers_hypervolume(points, data):
    ref = np.full(points.shape[1], 6.0)
    extra = np.array(data.draw(st.lists(st.integers(0, 7), min_size=points.shape[1],
                                        max_size=points.shape[1])), dtype=float)
    assert hypervolume(np.vstack([points, extra]), ref) >= hypervolume(points, ref) - 1e-12
    history = hypervolume_history(points, ref)
    assert (np.diff(history) >= -1e-12).all()
    assert history[-1] == pytest.approx(hypervolume(points, ref))


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 3).flatmap(lambda d: point_sets(d, max_size=12)))
def test_front_is_mutually_non_dominated_and_covers_the_rest(points):
    mask = pareto_mask(points)
    front, rest = points[mask], points[~mask]

    def dominates(a, b):
        return (a <= b).all() and (a < b).any()

    assert not any(dominates(a, b) for a in front for b in front)
    assert all(any(dominates(a, b) for a in front) for b in rest)
    assert ((non_dominated_ranks(points) == 0) == mask).all()
    ref = np.full(points.shape[1], 6.0)
    # The front alone carries the whole hypervolume; order does not matter.
    assert hypervolume(front, ref) == pytest.approx(hypervolume(points, ref))
    assert hypervolume(points[::-1], ref) == pytest.approx(hypervolume(points, ref))
    assert (hypervolume_contributions(points, ref)[~mask] == 0).all()


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_agrees_with_optunas_private_implementation(dims):
    # Optuna's own hypervolume is private (optuna._hypervolume), so ours is kept; this
    # cross-check shows a divergence between the two on random fronts, duplicates included.
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(dims)
    for _ in range(20):
        points = rng.random((int(rng.integers(1, 12)), dims))
        points = np.vstack([points, points[:2]])  # duplicates
        reference = np.full(dims, 1.1)
        assert hypervolume(points, reference) == pytest.approx(
            compute_hypervolume(points, reference), rel=1e-9, abs=1e-12)
