"""Trials a multi-fidelity scheduler stopped early (state PRUNED) in tables, figures and
the report: shown, with their partial accuracy, but never on the front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

from search import report
from search.export import choose
from search.reporting.figures import front_figure, latency_front_figure
from search.reporting.quality import search_curve
from search.study.results import load_results
from search.study.storage import StudyError
from tests.search.studies import MIX, ROWS, SMALL, SMALLER, Row, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

# Partial accuracies high and costs low enough that each would dominate every complete
# trial were it (wrongly) counted as final.
PRUNED = (
    Row(SMALLER, 0.95, 50_000, pruned_epoch=3, rung=1),
    Row(SMALL, 0.90, 60_000, pruned_epoch=1, rung=0),
    Row(MIX, 0.85, 70_000, pruned_epoch=1, rung=0),
)
FIRST = len(ROWS)  # trial number of PRUNED[0]
ASHA = {"name": "mo-asha", "min_epochs": 1, "reduction_factor": 3, "rungs": [1, 3]}
LEGEND = "pruned (partial accuracy at the epoch reached)"


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _pruned_trace(fig):
    return [t for t in fig.data if t.name == LEGEND]


def test_table_has_epochs_and_the_pruned_columns(storage):
    results = load_results(make_study(storage, rows=ROWS + PRUNED, scheduler=ASHA))
    trials = results.trials
    for column in ("epochs", "pruned_epoch", "rung"):
        assert trials[column].dtype == "Int64", column
    assert trials["partial_val_accuracy"].dtype == np.float64
    assert trials["epochs"].tolist() == [1] * len(ROWS) + [3, 1, 1]

    pruned = results.pruned
    assert pruned["number"].tolist() == [FIRST, FIRST + 1, FIRST + 2]
    assert (pruned["state"] == "PRUNED").all()
    assert pruned["pruned_epoch"].tolist() == [3, 1, 1]
    assert pruned["rung"].tolist() == [1, 0, 0]
    assert pruned["partial_val_accuracy"].tolist() == [0.95, 0.90, 0.85]
    assert pruned["val_accuracy"].isna().all()
    assert pruned["params"].tolist() == [50_000, 60_000, 70_000]
    assert pruned["arch"].tolist() == [str(SMALLER), str(SMALL), str(MIX)]

    others = trials[trials["state"] != "PRUNED"]
    assert others["pruned_epoch"].isna().all() and others["rung"].isna().all()
    assert others["partial_val_accuracy"].isna().all()
    assert results.info.scheduler == ASHA


def test_pruned_trials_are_never_on_the_front_nor_in_the_hypervolume(tmp_path, storage):
    with_pruned = load_results(make_study(storage, rows=ROWS + PRUNED))
    plain = load_results(make_study(f"sqlite:///{tmp_path / 'plain.db'}"))
    assert not with_pruned.pruned["on_front"].any()
    assert with_pruned.pruned["hv_contribution"].isna().all()
    assert with_pruned.front["number"].tolist() == plain.front["number"].tolist()
    assert with_pruned.front_against("params")["number"].tolist() == (
        plain.front_against("params")["number"].tolist())
    assert with_pruned.hypervolume == pytest.approx(plain.hypervolume)
    pd.testing.assert_series_equal(with_pruned.hypervolume_history, plain.hypervolume_history)
    assert not set(choose(with_pruned, None)["number"]) & set(with_pruned.pruned["number"])


def test_trials_csv_carries_the_columns(tmp_path, storage, capsys):
    make_study(storage, rows=ROWS + PRUNED, scheduler=ASHA)
    assert report.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    trials = pd.read_csv(tmp_path / "res" / "demo" / "trials.csv")
    pruned = trials[trials["state"] == "PRUNED"]
    assert pruned["number"].tolist() == [FIRST, FIRST + 1, FIRST + 2]
    assert pruned["pruned_epoch"].tolist() == [3, 1, 1]
    assert pruned["rung"].tolist() == [1, 0, 0]
    assert pruned["partial_val_accuracy"].tolist() == [0.95, 0.90, 0.85]
    assert pruned["val_accuracy"].isna().all() and not pruned["on_front"].any()
    assert trials["epochs"].tolist() == [1] * len(ROWS) + [3, 1, 1]
    # As written: whole numbers where pruned, blank cells (not 0, not 3.0) elsewhere.
    text = pd.read_csv(tmp_path / "res" / "demo" / "trials.csv", dtype=str,
                       keep_default_na=False)
    assert text["pruned_epoch"].tolist() == [""] * len(ROWS) + ["3", "1", "1"]
    assert text["rung"].tolist() == [""] * len(ROWS) + ["1", "0", "0"]
    assert text["epochs"].tolist() == ["1"] * len(ROWS) + ["3", "1", "1"]
    assert text["partial_val_accuracy"].tolist() == [""] * len(ROWS) + ["0.95", "0.9", "0.85"]
    assert "pruned: 3 (2 at epoch 1, 1 at epoch 3)" in out


def test_front_figure_draws_pruned_trials_apart_at_their_partial_accuracy(storage):
    results = load_results(make_study(storage, rows=ROWS + PRUNED))
    fig = front_figure(results, ())
    (trace,) = _pruned_trace(fig)
    assert list(trace.x) == [50_000, 60_000, 70_000]
    assert list(trace.y) == [0.95, 0.90, 0.85]
    assert trace.opacity == pytest.approx(0.25)
    assert trace.hovertext[0] == (f"trial {FIRST} pruned at epoch 3 (rung 1), partial "
                                  f"accuracy 95.00%<br>{SMALLER}")
    assert "pruned at epoch 1 (rung 0), partial accuracy 90.00%" in trace.hovertext[1]
    # The front's trace holds complete trials only.
    (front,) = [t for t in fig.data if t.name == "Pareto front"]
    assert not {50_000, 60_000, 70_000} & set(front.x)
    assert "3 pruned (faded), 1 others not drawn" in fig.layout.title.text


def test_latency_front_draws_pruned_trials_at_their_latency(storage):
    rows = ROWS + PRUNED
    results = load_results(make_study(storage, rows=rows,
                                      metrics=("val_accuracy", "latency_ms")))
    latency = results.info.objectives[1]
    (trace,) = _pruned_trace(latency_front_figure(results, latency))
    assert list(trace.x) == pytest.approx([r.latency_ms for r in PRUNED])
    assert list(trace.y) == [0.95, 0.90, 0.85]


def test_no_pruned_trace_without_pruned_trials(storage):
    fig = front_figure(load_results(make_study(storage)), ())
    assert not _pruned_trace(fig)
    assert "pruned" not in fig.layout.title.text


def test_summary_counts_pruned_trials_by_epoch_and_names_the_scheduler(storage):
    lines = report.summary_lines(load_results(make_study(storage, rows=ROWS + PRUNED,
                                                         scheduler=ASHA)))
    assert lines[0].endswith("9 trials (5 complete, 3 pruned, 1 fail)")
    assert ("scheduler: mo-asha (min_epochs 1, reduction_factor 3, rungs [1, 3])"
            in lines)
    assert ("pruned: 3 (2 at epoch 1, 1 at epoch 3); not on the front nor in the "
            "hypervolume") in lines


def test_summary_of_a_study_without_a_scheduler_or_pruning(tmp_path, storage):
    lines = report.summary_lines(load_results(make_study(storage)))
    assert not any(line.startswith(("scheduler:", "pruned:")) for line in lines)
    fifo = make_study(f"sqlite:///{tmp_path / 'fifo.db'}", scheduler={"name": "fifo"})
    assert "scheduler: fifo" in report.summary_lines(load_results(fifo))


def test_trial_note_of_a_pruned_trial_gives_its_partial_accuracy(storage):
    results = load_results(make_study(storage, rows=ROWS + PRUNED))
    note = report.trial_note(results, FIRST)
    assert note.startswith(f"### Trial {FIRST} (pruned)")
    assert "- pruned at epoch: 3" in note and "- rung: 1" in note
    assert "- partial val accuracy (at that epoch): 95.00%" in note
    assert "- epochs trained: 3" in note
    assert "- val accuracy:" not in note  # it has no final accuracy


def test_a_study_with_only_pruned_trials_has_nothing_to_report(tmp_path, storage, capsys):
    make_study(storage, rows=PRUNED[:2] + ROWS[-1:])
    with pytest.raises(StudyError, match=r"has no complete trial \(2 pruned, 1 fail\)"):
        load_results(optuna.load_study(study_name="demo", storage=storage))
    code = report.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path / "res"), "--no-dashboard"])
    assert code == 2 and "2 pruned" in capsys.readouterr().err


def test_search_curve_keeps_pruned_trials_without_an_accuracy(storage):
    study = make_study(storage, rows=ROWS + PRUNED)
    results = load_results(study)
    curve = search_curve(study, results, "asha", 0)
    pruned = curve[curve["state"] == "PRUNED"]
    assert pruned["trial"].tolist() == [FIRST, FIRST + 1, FIRST + 2]
    assert pruned["val_accuracy"].isna().all()
    assert curve["hypervolume"].iat[-1] == pytest.approx(results.hypervolume)


def test_a_pruned_trial_recorded_loosely_still_has_no_final_accuracy(storage):
    study = make_study(storage, rows=ROWS + PRUNED[:1])
    # No epoch, no per-epoch list, and an accuracy attribute the search does not write.
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "arch_str": str(SMALL), "params": 60_000, "macs": 1_000_000, "val_accuracy": 0.99}))
    results = load_results(study)
    loose = results.trials.loc[FIRST + 1]
    assert pd.isna(loose["val_accuracy"]) and pd.isna(loose["epochs"])
    assert pd.isna(loose["partial_val_accuracy"])
    assert "pruned: 2 (1 at epoch 3, 1 at an unrecorded epoch)" in " ".join(
        report.summary_lines(results))
    assert len(_pruned_trace(front_figure(results, ()))[0].x) == 1  # nothing to place it at
    assert "pruned at epoch" not in report.trial_note(results, FIRST + 1)
