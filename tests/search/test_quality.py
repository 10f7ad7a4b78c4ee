"""Search-quality maths: curves from a study, bands over seeds, trials to match random."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from search.reporting.quality import (
    CURVE_COLUMNS,
    busy_seconds,
    by_epochs,
    by_time,
    by_trials,
    format_paired_accuracy,
    format_scheduler_summary,
    format_summary,
    paired_accuracy,
    scheduler_summary,
    search_curve,
    summarise,
)
from search.study.results import load_results
from tests.search.studies import ROWS, SMALL, Row, make_study


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


def test_summary_compares_n_trials_with_randoms_2n_seed_by_seed() -> None:
    curves = _curves({
        ("random", 0): [0.1, 0.2, 0.3, 0.4], ("random", 1): [0.1, 0.2, 0.3, 0.6],
        ("fast", 0): [0.2, 0.6], ("fast", 1): [0.2, 0.3],
        ("slow", 0): [0.1, 0.1], ("slow", 1): [0.1, 0.2],
    })
    table = summarise(curves, 2, 4)
    assert list(table.index) == ["random", "fast", "slow"]  # best final mean first
    assert table.loc["fast", "hv_at_n"] == pytest.approx(0.45)
    assert table.loc["random", "hv_at_n"] == pytest.approx(0.2)  # after 2 of its 4 trials
    assert table.loc["random", "trials"] == 4 and table.loc["fast", "trials"] == 2
    # fast's mean after 2 (0.45) over random's after 4 (0.5), and seed by seed
    assert table.loc["fast", "ratio"] == pytest.approx(0.9)
    assert table.loc["fast", "per_seed"] == pytest.approx((1.5, 0.5))
    assert table.loc["slow", "per_seed"] == pytest.approx((0.25, 1 / 3))
    # over two seeds a bootstrap draw holds seed 0 twice, seed 1 twice, or both
    assert table.loc["fast", "ratio_low"] == pytest.approx(0.5)
    assert table.loc["fast", "ratio_high"] == pytest.approx(1.5)
    assert table.loc["random", "ratio"] == pytest.approx(0.4)  # its own 2 against its 4
    text = format_summary(table, 2, 4)
    assert "/ random after 4 [95%]" in text and "0.900 [0.500, 1.500]   1.50, 0.50" in text


def test_summary_without_a_baseline_has_no_ratios() -> None:
    table = summarise(_curves({("tpe", 0): [0.1, 0.3], ("tpe", 1): [0.2, 0.2]}), 2, 4)
    assert table.loc["tpe", "hv_mean"] == pytest.approx(0.25)
    assert pd.isna(table.loc["tpe", "ratio"]) and table.loc["tpe", "per_seed"] == ()
    text = format_summary(table, 2)
    assert "random after" not in text and "0.2500" in text.splitlines()[2]


def test_wall_time_leaves_out_the_gap_between_an_interruption_and_the_resume() -> None:
    start = datetime(2026, 12, 4, 21, 0)

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    # two overlapping trials, an hour with none running, then the resumed search's trial
    intervals = [(at(3612), at(3620)), (at(5), at(12)), (at(0), at(10))]
    assert busy_seconds(intervals, [at(10), at(12), at(3616), at(3620)]) == [10, 12, 16, 20]
    assert busy_seconds([], [at(1)]) == [0]


def test_epochs_count_what_each_trial_trained(tmp_path: Path) -> None:
    rows = (*ROWS[:5], Row(SMALL, 0.5, 90_000, pruned_epoch=1, rung=0),
            Row(SMALL, 0.6, 80_000, pruned_epoch=3, rung=1))
    study = make_study(f"sqlite:///{tmp_path / 's.db'}", rows=rows)
    curve = search_curve(study, load_results(study), "tpe", 0)
    trained = [len(t.user_attrs.get("val_accuracy_per_epoch") or ()) for t in study.trials]
    assert trained[-2:] == [1, 3]
    assert list(curve["epochs"]) == list(pd.Series(trained).cumsum())
    assert list(curve["state"])[-2:] == ["PRUNED", "PRUNED"]
    assert curve["hypervolume"].iat[-1] == curve["hypervolume"].iat[4]  # pruned add nothing


def _epoch_curves(runs: dict[tuple[str, int], list[tuple[int, float]]]) -> pd.DataFrame:
    """Curves from (epochs spent, hypervolume) per finished trial, a second per epoch."""
    rows = [{"sampler": label, "seed": seed, "trial": k, "trained": k + 1, "duplicate": False,
             "epochs": epochs, "hypervolume": hv, "wall_seconds": float(epochs)}
            for (label, seed), curve in runs.items() for k, (epochs, hv) in enumerate(curve)]
    return pd.DataFrame(rows)


def test_scheduler_summary_finds_the_epochs_to_reach_fifos_final_mean() -> None:
    curves = _epoch_curves({
        ("fifo", 0): [(9, 0.2), (18, 0.3), (27, 0.4)],
        ("fifo", 1): [(9, 0.2), (18, 0.4), (27, 0.4)],
        ("asha", 0): [(1, 0.1), (2, 0.1), (5, 0.3), (6, 0.4), (15, 0.5)],
        ("asha", 1): [(1, 0.1), (4, 0.3), (5, 0.4), (6, 0.4), (15, 0.45)],
    })
    band = by_epochs(curves, points=28)  # grid 0, 1, ..., 27
    band = band[band["sampler"] == "asha"].set_index("epochs")
    assert band.loc[6.0, "mean"] == pytest.approx(0.4)
    assert band.loc[5.0, "mean"] == pytest.approx(0.35)
    table = scheduler_summary(curves, "fifo", points=28)
    assert table.loc["fifo", "epochs"] == 27 and table.loc["asha", "epochs"] == 15
    assert table.loc["asha", "epochs_to_baseline"] == 6  # both seeds at 0.4 after 6 epochs
    assert table.loc["asha", "epoch_ratio"] == pytest.approx(6 / 27)
    assert table.loc["fifo", "epochs_to_baseline"] == 27  # its mean is 0.35 at 18, 0.4 at 27
    assert table.loc["asha", "hv_mean"] == pytest.approx(0.475)
    # Seed by seed: seed 0 reached its fifo's 0.4 at epoch 6 of fifo's 27, seed 1 its 0.4
    # at epoch 5.
    assert table.loc["asha", "per_seed"] == pytest.approx((6 / 27, 5 / 27))
    assert table.loc["asha", "seed_ratio"] == pytest.approx(11 / 54)
    assert table.loc["asha", "worst_seed"] == pytest.approx(6 / 27)
    assert table.loc["asha", "seed_ratio_low"] == pytest.approx(5 / 27)
    text = format_scheduler_summary(table, "fifo")
    assert "asha            mean 0.20 [0.19, 0.22], worst 0.22; per seed 0.22, 0.19" in text
    # After a third of its 27 epochs fifo held 0.2 of its final 0.4 on both seeds, asha
    # 0.4 of 0.4; fifo's own line comes first.
    at_third = text.split("after a third")[1]
    fifo_line, asha_line = "fifo            0.50, 0.50", "asha            1.00, 1.00"
    assert at_third.index(fifo_line) < at_third.index(asha_line)


def test_a_seed_that_never_reaches_fifo_has_no_mean() -> None:
    curves = _epoch_curves({("fifo", 0): [(9, 0.5)], ("asha", 0): [(1, 0.1), (3, 0.4)],
                            ("fifo", 1): [(9, 0.2)], ("asha", 1): [(2, 0.3)],
                            ("fifo", 2): [(9, 0.5)], ("asha", 2): [(4, 0.6)]})
    table = scheduler_summary(curves, "fifo", points=10)
    assert table.loc["asha", "per_seed"][1:] == pytest.approx((2 / 9, 4 / 9))
    assert pd.isna(table.loc["asha", "per_seed"][0]) and pd.isna(table.loc["asha", "seed_ratio"])
    # after 3 of fifo's 9 epochs: 0.4 of 0.5; 0.3 of 0.2; nothing complete yet on seed 2
    assert table.loc["asha", "at_third"] == pytest.approx((0.8, 1.5, 0.0))
    text = format_scheduler_summary(table, "fifo")
    assert "a seed never got there; per seed never, 0.22, 0.44" in text
    assert "asha            0.80, 1.50, 0.00" in text


def test_a_long_run_label_keeps_the_columns_apart() -> None:
    curves = _epoch_curves({("tpe-spread", 0): [(9, 0.5)],
                            ("tpe-spread_mo-asha", 0): [(1, 0.1), (3, 0.5)]})
    text = format_scheduler_summary(scheduler_summary(curves, "tpe-spread", points=10),
                                    "tpe-spread")
    lines = text.splitlines()
    assert lines[0].index("final hypervolume") > len("tpe-spread_mo-asha")
    assert "min  epochs to tpe-spread final" in lines[0]
    assert "tpe-spread_mo-asha  mean 0.33" in text and "tpe-spread_mo-asha  1.00" in text


def test_paired_accuracy_pairs_the_same_architecture_trained_to_the_end_on_one_seed() -> None:
    def row(label: str, seed: int, arch: str, accuracy: float, state: str = "COMPLETE",
            duplicate: bool = False) -> dict[str, object]:
        return {"sampler": label, "seed": seed, "arch": arch, "val_accuracy": accuracy,
                "params": 1000, "state": state, "duplicate": duplicate}

    curves = pd.DataFrame([
        row("fifo", 0, "a", 0.80), row("fifo", 0, "b", 0.70), row("fifo", 1, "a", 0.60),
        row("asha", 0, "a", 0.78),  # the one pair
        row("asha", 0, "a", 0.78, duplicate=True),  # served from the cache: not trained again
        row("asha", 0, "b", 0.40, state="PRUNED"),  # stopped at a rung: not to the end
        row("asha", 1, "b", 0.75),  # b on seed 1 only here
    ])
    pairs = paired_accuracy(curves, "fifo")
    assert len(pairs) == 1
    assert pairs.iloc[0][["seed", "arch"]].tolist() == [0, "a"]
    assert pairs.iloc[0]["difference"] == pytest.approx(-2.0)
    text = format_paired_accuracy(pairs, "fifo")
    assert "asha            1 pair(s): mean -2.00 [-2.00, -2.00]; -2.0 (seed 0)" in text
    assert format_paired_accuracy(pairs.iloc[:0], "fifo").endswith("(none)")
