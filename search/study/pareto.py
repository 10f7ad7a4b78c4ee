"""Pareto fronts and hypervolume on plain arrays.

Everything here minimises: a point is a row of an ``(n, d)`` array, and ``a`` dominates
``b`` when ``a <= b`` in every column and ``a < b`` in at least one. Objectives that are
maximised are negated first with :func:`to_minimisation`, which takes Optuna's
``StudyDirection``s. Equal points do not dominate each other, so duplicates share a rank
(and both sit on the front).

Hypervolume is the Lebesgue measure of the region dominated by the points and bounded by a
reference point ``ref``; only points strictly better than ``ref`` in every column add to
it. It is exact: a sweep for 2 objectives, slicing along the last objective (recursing
down to the sweep) for more, which is plenty for fronts of a few hundred points.

How study objectives are scaled and where the reference sits is a decision of the caller:
see ``search.study.objectives.hypervolume_space``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from optuna.study import StudyDirection

__all__ = [
    "hypervolume",
    "hypervolume_contributions",
    "hypervolume_history",
    "non_dominated_ranks",
    "pareto_mask",
    "to_minimisation",
]


def _as_points(points: ArrayLike) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D (n, d) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("points must be finite (no NaN or inf)")
    return array


def _as_reference(reference: ArrayLike, dims: int) -> np.ndarray:
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (dims,) or not np.isfinite(ref).all():
        raise ValueError(f"reference must be {dims} finite numbers, got {reference!r}")
    return ref


def to_minimisation(values: ArrayLike, directions: Sequence[StudyDirection]) -> np.ndarray:
    """``values`` (points ``(n, d)`` or one point ``(d,)``) with maximised columns negated."""
    for direction in directions:
        if direction not in (StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE):
            raise ValueError(f"directions must be StudyDirection.MINIMIZE or MAXIMIZE, "
                             f"got {direction!r}")
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    array = np.asarray(values, dtype=float)
    if array.shape[-1:] != signs.shape:
        raise ValueError(f"{len(signs)} directions for values of shape {array.shape}")
    return array * signs


def _dominance(points: np.ndarray) -> np.ndarray:
    """``D[i, j]``: point ``i`` dominates point ``j``."""
    le = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    lt = (points[:, None, :] < points[None, :, :]).any(axis=2)
    return le & lt


def non_dominated_ranks(points: ArrayLike) -> np.ndarray:
    """Rank of every point: 0 for the front, 1 for the front once rank 0 is removed, ..."""
    pts = _as_points(points)
    dominates = _dominance(pts)
    ranks = np.full(len(pts), -1)
    remaining = np.ones(len(pts), dtype=bool)
    rank = 0
    while remaining.any():
        # Peel off the points that no remaining point dominates.
        layer = remaining & ~dominates[remaining].any(axis=0)
        ranks[layer] = rank
        remaining &= ~layer
        rank += 1
    return ranks


def pareto_mask(points: ArrayLike) -> np.ndarray:
    """Boolean mask of the non-dominated points (duplicates of a front point included)."""
    pts = _as_points(points)
    return ~_dominance(pts).any(axis=0)


def _volume(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of points that are all strictly better than ``ref``."""
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    if points.shape[1] == 2:
        # Sweep in x; lexicographic order puts the better of two equal-x points first.
        order = np.lexsort((points[:, 1], points[:, 0]))
        area, best_y = 0.0, ref[1]
        for x, y in points[order]:
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(area)
    # Slice along the last objective: between consecutive levels the dominated region is
    # the (d-1)-dimensional volume of the points at or below the lower level.
    points = points[np.argsort(points[:, -1], kind="stable")]
    levels = np.append(points[:, -1], ref[-1])
    total = 0.0
    for k in range(len(points)):
        thickness = levels[k + 1] - levels[k]
        if thickness > 0:
            total += thickness * _volume(points[: k + 1, :-1], ref[:-1])
    return total


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Exact hypervolume of ``points`` (minimised) with respect to ``reference``."""
    pts = _as_points(points)
    ref = _as_reference(reference, pts.shape[1])
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    front = np.unique(pts[pareto_mask(pts)], axis=0)
    return _volume(front, ref)


def hypervolume_contributions(points: ArrayLike,
                              reference: ArrayLike) -> np.ndarray:
    """Per point, the hypervolume lost when it alone is removed (0 for dominated points
    and for each of two equal points: the other still covers the region)."""
    pts = _as_points(points)
    ref = _as_reference(reference, pts.shape[1])
    total = hypervolume(pts, ref)
    keep = np.ones(len(pts), dtype=bool)
    contributions = np.zeros(len(pts))
    for i in np.flatnonzero(pareto_mask(pts)):
        keep[i] = False
        contributions[i] = total - hypervolume(pts[keep], ref)
        keep[i] = True
    # Subtracting nearly equal floats can leave -1e-17 where the true answer is 0.
    return np.maximum(contributions, 0.0)


def hypervolume_history(points: ArrayLike,
                        reference: ArrayLike) -> np.ndarray:
    """``out[k]``: hypervolume of the first ``k + 1`` points (rows in the order given)."""
    pts = _as_points(points)
    ref = _as_reference(reference, pts.shape[1])
    history = np.zeros(len(pts))
    front = pts[:0]
    for k, point in enumerate(pts):
        front = np.vstack([front, point])
        front = front[pareto_mask(front)]
        history[k] = hypervolume(front, ref)
    return history
