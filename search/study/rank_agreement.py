"""How far two scorings of the same architectures agree on their order.

Spearman's rho (Pearson's correlation of the average ranks) and Kendall's tau-b (ties
counted as neither concordant nor discordant, and corrected for), with a percentile
bootstrap interval over the architectures; the share of one top-k in the other. Plain
numpy: the sets are tens of architectures, so the O(n^2) tau is instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = ["Agreement", "agreement", "bootstrap_interval", "kendall", "spearman",
           "top_k_overlap"]


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two equal-length 1-D scorings needed, got {a.shape} and {b.shape}")
    return a, b


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho; NaN when either scoring is constant or has under 2 values."""
    a, b = _pair(x, y)
    ranks_a, ranks_b = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if len(a) < 2 or ranks_a.std() == 0 or ranks_b.std() == 0:
        return float("nan")
    # Rounded so that equal orders give exactly 1 (corrcoef is a few ulps off with ties).
    return round(float(np.corrcoef(ranks_a, ranks_b)[0, 1]), 12)


def kendall(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b; NaN when either scoring is constant or has under 2 values."""
    a, b = _pair(x, y)
    upper = np.triu_indices(len(a), k=1)
    da = np.sign(a[:, None] - a[None, :])[upper]
    db = np.sign(b[:, None] - b[None, :])[upper]
    untied = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float(np.sum(da * db) / untied) if untied else float("nan")


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray], float], x: ArrayLike,
                       y: ArrayLike, *, resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over architectures drawn with replacement
    (draws where it is undefined, e.g. all one value, are skipped)."""
    a, b = _pair(x, y)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(resamples, len(a)))
    values = np.array([statistic(a[i], b[i]) for i in draws])
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def top_k_overlap(x: ArrayLike, y: ArrayLike, k: int) -> float:
    """Share of the ``k`` highest by ``y`` that are among the ``k`` highest by ``x``."""
    a, b = _pair(x, y)
    k = min(k, len(a))
    if k < 1:
        return float("nan")
    # A stable sort on the negated values keeps ties in the given order.
    top_a = set(np.argsort(-a, kind="stable")[:k])
    top_b = set(np.argsort(-b, kind="stable")[:k])
    return len(top_a & top_b) / k


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of a scoring with a reference scoring, with 95% bootstrap intervals."""

    count: int
    spearman: float
    spearman_interval: tuple[float, float]
    kendall: float
    kendall_interval: tuple[float, float]


def agreement(x: ArrayLike, y: ArrayLike, *, resamples: int = 2000, seed: int = 0) -> Agreement:
    """Spearman and Kendall of ``x`` against ``y``, each with its bootstrap interval."""
    a, b = _pair(x, y)
    return Agreement(
        count=len(a),
        spearman=spearman(a, b),
        spearman_interval=bootstrap_interval(spearman, a, b, resamples=resamples, seed=seed),
        kendall=kendall(a, b),
        kendall_interval=bootstrap_interval(kendall, a, b, resamples=resamples, seed=seed),
    )
