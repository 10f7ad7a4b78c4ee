"""The paper's rule over searches: CSE shares per stage, fronts against dominated trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.reporting.paper_rule import (
    RULE_COLUMNS,
    SHARE_COLUMNS,
    cse_rule,
    cse_shares,
    format_cse_rule,
)
from search.study.results import load_results
from tests.search.studies import MIX, ROWS, SMALL, SMALLER, Row, make_study


def test_shares_count_the_cse_blocks_of_each_searchs_front_and_dominated(tmp_path: Path) -> None:
    results = load_results(make_study(f"sqlite:///{tmp_path / 's.db'}"))
    shares = cse_shares({("tpe", 0): results, ("tpe", 1): results})
    assert tuple(shares.columns) == SHARE_COLUMNS
    stages = len(MIX.stages)
    assert len(shares) == 2 * stages
    # ROWS: mobilenetv2, paper-mix and SMALL are the front; cse-only and SMALLER dominated;
    # the failed trial is neither, and the presets are yardsticks, not findings.
    assert [row.preset for row in ROWS[:3]] == ["mobilenetv2", "paper-mix", "cse-only"]
    front, dominated = [SMALL], [SMALLER]
    for i, row in enumerate(shares[shares["seed"] == 0].itertuples()):
        assert row.stage == f"stage {i + 1}"
        assert row.front == pytest.approx(np.mean([a.stages[i].op == "cse" for a in front]))
        assert row.dominated == pytest.approx(
            np.mean([a.stages[i].op == "cse" for a in dominated]))
        assert (row.front_trials, row.dominated_trials) == (1, 1)


def test_a_network_proposed_again_counts_once(tmp_path: Path) -> None:
    again = (Row(SMALL, 0.74, 100_000, 20_000_000), Row(SMALLER, 0.60, 150_000, 30_000_000))
    results = load_results(make_study(f"sqlite:///{tmp_path / 's.db'}", rows=ROWS + again))
    assert results.front["arch"].tolist().count(str(SMALL)) == 2
    shares = cse_shares({("tpe", 0): results})
    assert (shares["front_trials"] == 1).all() and (shares["dominated_trials"] == 1).all()
    alone = cse_shares({("tpe", 0): load_results(make_study(f"sqlite:///{tmp_path / 'a.db'}"))})
    pd.testing.assert_frame_equal(shares, alone)


def _shares(stage_values: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    return pd.DataFrame([{"run": "tpe", "seed": seed, "stage": stage, "front": f,
                          "dominated": d, "front_trials": 4, "dominated_trials": 10}
                         for stage, pairs in stage_values.items()
                         for seed, (f, d) in enumerate(pairs)])


def test_rule_names_the_block_fronts_prefer_only_when_the_interval_is_clear_of_0() -> None:
    rule = cse_rule(_shares({
        "stage 1": [(0.0, 0.5), (0.0, 0.5), (0.25, 0.5)],  # fronts avoid CSE early
        "stage 2": [(1.0, 0.5), (1.0, 0.5), (1.0, 0.5)],  # and pick it late
        "stage 3": [(0.0, 0.5), (1.0, 0.5), (0.5, 0.5)],  # one seed each way
    })).set_index("stage")
    assert tuple(rule.reset_index().columns) == RULE_COLUMNS
    assert list(rule["preferred"]) == ["BTN", "CSE", "-"]
    assert rule.loc["stage 1", "front"] == pytest.approx(0.25 / 3)
    assert rule.loc["stage 1", "difference"] == pytest.approx(0.25 / 3 - 0.5)
    assert rule.loc["stage 2", ["difference_low", "difference_high"]].tolist() == [0.5, 0.5]
    assert rule.loc["stage 3", "difference_low"] < 0 < rule.loc["stage 3", "difference_high"]
    assert (rule["searches"] == 3).all()
    text = format_cse_rule(rule.reset_index())
    assert "prefer BTN (interval of the difference clear of 0) in: stage 1" in text
    assert "prefer CSE (interval of the difference clear of 0) in: stage 2" in text


def test_a_search_without_dominated_trials_in_a_stage_is_left_out_of_it() -> None:
    shares = _shares({"stage 1": [(0.0, 0.5), (0.0, 0.5), (1.0, np.nan)]})
    rule = cse_rule(shares)
    assert rule.loc[0, "searches"] == 2 and rule.loc[0, "front"] == 0.0
    assert rule.loc[0, "preferred"] == "BTN"
