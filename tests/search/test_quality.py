"""Search-quality maths: curves from a study, bands over seeds, trials to match random."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from search.quality import CURVE_COLUMNS, by_time, by_trials, search_curve, summarise
from search.results import load_results
from tests.search.studies import ROWS, make_study


def _curves(runs: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    """Curves with one trained trial per row and a second of wall time per trial."""
    rows = [{"sampler": sampler, "seed": seed, "trial": k, "trained": k + 1, "duplicate": False,
             "hypervolume": hv, "wall_seconds": float(k + 1)}
            for (sampler, seed), curve in runs.items() for k, hv in enumerate(curve)]
    return pd.DataFrame(rows)


def test_curve_ends_at_the_reports_hypervolume(tmp_path: Path) -> None:
    study = make_study(f"sqlite:///{tmp_path / 's.db'}")
    results = load_results(study)
    curve = search_curve(study, results, "random", 0)
    assert tuple(curve.columns) == CURVE_COLUMNS
    assert list(curve["trial"]) == list(range(len(ROWS)))  # every finished trial, in order
    assert curve["hypervolume"].iat[-1] == pytest.approx(results.hypervolume)
    assert list(curve["hypervolume"]) == pytest.approx(
        list(results.hypervolume_history.reindex(curve["trial"]).ffill()))
    assert list(curve["trained"]) == list(range(1, len(ROWS) + 1))  # the failure counts too
    assert not curve["duplicate"].any()


def test_bands_are_over_seeds_and_runs_that_stop_early_keep_their_value() -> None:
    curves = _curves({("random", 0): [0.1, 0.2, 0.3], ("random", 1): [0.3, 0.3]})
    band = by_trials(curves, 3).set_index("trials")
    assert list(band["mean"]) == pytest.approx([0.2, 0.25, 0.3])
    assert list(band["min"]) == pytest.approx([0.1, 0.2, 0.3])
    assert list(band["max"]) == pytest.approx([0.3, 0.3, 0.3])
    timed = by_time(curves, points=4).set_index("wall_seconds")  # grid 0, 1, 2, 3 s
    assert list(timed["mean"]) == pytest.approx([0.0, 0.2, 0.25, 0.3])


def test_a_duplicate_moves_the_curve_neither_right_nor_up() -> None:
    curves = _curves({("random", 0): [0.1, 0.2]})
    duplicate = curves.iloc[[1]].assign(trial=2, duplicate=True)
    band = by_trials(pd.concat([curves, duplicate]), 2)
    assert list(band["mean"]) == pytest.approx([0.1, 0.2])


def test_summary_counts_trials_to_random_final_mean() -> None:
    curves = _curves({
        ("random", 0): [0.1, 0.2, 0.3, 0.4], ("random", 1): [0.1, 0.2, 0.3, 0.4],
        ("fast", 0): [0.2, 0.4, 0.4, 0.5], ("fast", 1): [0.2, 0.4, 0.5, 0.5],
        ("slow", 0): [0.1, 0.1, 0.2, 0.3], ("slow", 1): [0.1, 0.1, 0.2, 0.3],
    })
    table = summarise(curves, 4)
    assert list(table.index) == ["fast", "random", "slow"]  # best final mean first
    assert table.loc["fast", "hv_mean"] == pytest.approx(0.5)
    assert table.loc["fast", "trials_to_baseline"] == 2
    assert table.loc["fast", "ratio"] == pytest.approx(2.0)  # 4 random trials / 2 of fast
    assert table.loc["random", "ratio"] == pytest.approx(1.0)
    assert pd.isna(table.loc["slow", "trials_to_baseline"])  # never reaches 0.4 in 4 trials
    assert pd.isna(table.loc["slow", "ratio"])
