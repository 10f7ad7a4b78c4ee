"""Multi-objective asynchronous successive halving (MO-ASHA), the decision alone.

Schmucker et al. 2021 (arXiv 2106.12639): rungs sit at ``min_epochs * eta**k`` epochs.
When a trial reaches a rung, its objective vector joins those recorded there; all of them
are ranked, and the trial goes on only if its rank is in the top ``1/eta``. Trials are
never paused (the stopping variant of ASHA), so no worker ever waits for a promotion.

Ranking is non-dominated sorting, fronts in order, and within a front an epsilon-net
order: the front's most accurate point first, then again and again the point farthest
from those already taken. Chosen over NSGA-II's crowding distance because a rung early in
a search holds a handful of points, where crowding distance ties (every point of a
two-point front is an "extreme" with infinite distance) and the order falls to chance;
the epsilon-net orders every front completely and rewards spread along it, and it is the
variant the paper found best. Exact duplicates are at distance 0 from the copy taken
before them, so a repeated vector ranks after its earlier twin; all remaining ties go to
the point recorded first.

Plain arrays in, decisions out: the Ray Tune scheduler (:mod:`search.driver.scheduler`) feeds it.
Points are minimised and already scaled as the search compares them (costs in log10).
"""

from __future__ import annotations

import numpy as np

from search.study.pareto import non_dominated_ranks
from space.checks import positive_int

__all__ = ["check_rung_parameters", "continues", "rank_order", "rung_epochs"]


def check_rung_parameters(min_epochs: int, reduction_factor: int) -> None:
    """``ValueError``, named as the flags are, unless the first rung is at least one epoch
    and eta at least 2 (below that the rungs never grow)."""
    positive_int(min_epochs, "min-epochs")
    positive_int(reduction_factor, "reduction-factor")
    if reduction_factor < 2:
        raise ValueError(f"reduction-factor must be >= 2, got {reduction_factor}")


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> tuple[int, ...]:
    """Epochs at which trials are compared: ``min_epochs * eta**k`` below ``max_epochs``
    (a trial that reaches ``max_epochs`` is complete; there is nothing left to stop)."""
    check_rung_parameters(min_epochs, reduction_factor)
    rungs = []
    epoch = min_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return tuple(rungs)


def _scaled(points: np.ndarray) -> np.ndarray:
    """Each objective mapped to [0, 1] over the rung, so no unit dominates the distances."""
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (points - low) / span


def _eps_net(scaled: np.ndarray, members: np.ndarray) -> list[int]:
    """``members`` (indices into ``scaled``) in epsilon-net order."""
    # The first objective is the one the search maximises (accuracy): start from its best;
    # argmin takes the earliest of equals, as does every argmax below.
    first = members[int(np.argmin(scaled[members, 0]))]
    order = [int(first)]
    nearest = np.linalg.norm(scaled[members] - scaled[first], axis=1)
    taken = members == first
    for _ in range(len(members) - 1):
        candidates = np.where(taken, -np.inf, nearest)
        pick = int(np.argmax(candidates))
        order.append(int(members[pick]))
        taken[pick] = True
        nearest = np.minimum(nearest, np.linalg.norm(scaled[members] - scaled[members[pick]],
                                                     axis=1))
    return order


def rank_order(points: np.ndarray) -> list[int]:
    """Indices of ``points`` (rows, minimised), best first: fronts in order, each front in
    epsilon-net order."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or not len(points):
        raise ValueError(f"points must be a non-empty (n, objectives) array, got shape "
                         f"{points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points must be finite")
    ranks = non_dominated_ranks(points)
    scaled = _scaled(points)
    order: list[int] = []
    for front in range(ranks.max() + 1):
        order += _eps_net(scaled, np.flatnonzero(ranks == front))
    return order


def continues(recorded: np.ndarray, reduction_factor: int) -> bool:
    """Whether the trial whose vector is the last row of ``recorded`` (every vector at its
    rung, its own included, in the order they arrived) goes on: its rank is in the top
    ``1/reduction_factor``, i.e. ``position * eta < count`` (the first arrival always goes
    on, as in ASHA)."""
    position = rank_order(recorded).index(len(recorded) - 1)
    return position * reduction_factor < len(recorded)
