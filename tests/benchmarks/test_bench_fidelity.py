"""The reference set's and the fidelity benchmark's ``--preset ci`` runs (synthetic data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from space import Arch
from space.files import hold_folder
from tests.benchmarks.scripts import run_script
from tests.search.studies import SMALL, make_study

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "ci.csv"
    run = _run("reference_set.py", "--preset", "ci", "--out", str(path))
    assert run.returncode == 0, run.stderr
    return path


def test_reference_set_has_every_planned_row_and_resumes(
        reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = pd.read_csv(reference)
    # ci: paper-mix, 3 random strata, one narrow paper-like and reverse hybrid; seed 1 for 3.
    assert len(rows) == 6 + 3 and not rows.duplicated(["name", "seed"]).any()
    assert set(rows["kind"]) == {"preset", "random", "paper-like", "reverse"}
    assert sorted(rows.loc[rows["seed"] == 1, "name"]) == ["cse-early-narrow", "paper-mix",
                                                          "random-01"]
    for row in rows.itertuples():
        epochs = json.loads(row.val_accuracy_per_epoch)
        assert len(epochs) == 2 and epochs[-1] == pytest.approx(row.val_accuracy, abs=1e-5)
        assert 0 <= row.test_accuracy <= 1 and row.params > 0 and row.macs > 0
        assert row.cpu_seconds > 0 and json.loads(row.versions)["torch"]
    assert rows["command"].str.contains("reference_set.py --preset ci").all()
    # The random strata are ordered by size: one architecture from each third.
    random = rows[(rows["kind"] == "random") & (rows["seed"] == 0)].sort_values("name")
    assert random["params"].is_monotonic_increasing
    code, out, _ = run_script("reference_set.py", ["--preset", "ci", "--out", str(reference)],
                              capsys)
    assert code == 0 and "9 done, 0 to train" in out
    assert pd.read_csv(reference).equals(rows)


def test_front_members_of_a_search_join_the_set(reference: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # A search on the ci set's input whose front is two presets and SMALL (trial 3).
    make_study(f"sqlite:///{tmp_path / 'search.db'}", dataset="synthetic",
               input_shape=(3, 16, 16))
    grown = tmp_path / "grown.csv"
    shutil.copy(reference, grown)
    run = _run("reference_set.py", "--preset", "ci", "--out", str(grown),
               "--front-of", str(tmp_path / "search.db"), "--front-count", "3")
    assert run.returncode == 0, run.stderr
    assert "10 rows, 9 done, 1 to train" in run.stdout
    rows = pd.read_csv(grown)
    added = rows[rows["kind"] == "front"]
    assert list(added["name"]) == ["front-demo-t3"]
    assert Arch.from_json(added["arch"].iat[0]) == SMALL
    assert "--front-of" in added["command"].iat[0]
    # Without the flag, the row stays.
    code, out, _ = run_script("reference_set.py", ["--preset", "ci", "--out", str(grown)],
                              capsys)
    assert code == 0 and "0 to train" in out
    assert len(pd.read_csv(grown)) == len(rows)
    elsewhere = tmp_path / "cifar.db"
    make_study(f"sqlite:///{elsewhere}")  # a 32x32x3 study: not the set's input
    code, _, err = run_script("reference_set.py", ["--preset", "ci", "--out", str(grown),
                                                   "--front-of", str(elsewhere)], capsys)
    assert code == 2 and err.startswith("error: --front-of ")
    assert "the reference set on" in err


def test_fidelity_ranks_the_reference_itself_at_exactly_one(
        reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # First the first rung alone; the full run then trains the rung training again for its
    # second read, and keeps the first read's scores, once each.
    first = _run("bench_fidelity.py", "--preset", "ci", "--reference", str(reference),
                 "--out", str(tmp_path), "--run", "ci", "--proxies", "one-epoch,rung-1")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "ci"
    kept = pd.read_csv(out / "scores.csv")
    run = _run("bench_fidelity.py", "--preset", "ci", "--reference", str(reference),
               "--out", str(tmp_path), "--run", "ci")
    assert run.returncode == 0, run.stderr
    assert "6 to run" in run.stdout
    scores = pd.read_csv(out / "scores.csv")
    # 2 trainings x 6 architectures; the rung training gives two scores.
    assert len(scores) == 6 * 3 and not scores.duplicated(["proxy", "name"]).any()
    pd.testing.assert_frame_equal(scores.iloc[:len(kept)], kept)
    assert set(scores["proxy"]) == {"one-epoch", "rung-1", "rung-2"}
    rungs = scores[scores["proxy"] == "rung-2"].set_index("name")["cpu_seconds"]
    firsts = scores[scores["proxy"] == "rung-1"].set_index("name")["cpu_seconds"]
    assert (rungs > firsts.loc[rungs.index]).all()  # a later rung costs more
    summary = pd.read_csv(out / "summary.csv").set_index("proxy")
    assert list(summary.index) == ["params", "one-epoch", "rung-1", "rung-2", "reference",
                                   "reference seed 1"]
    itself = summary.loc["reference"]
    assert itself["spearman"] == 1 and itself["kendall"] == 1 and itself["top5_overlap"] == 1
    assert itself["spearman_low"] == 1 and itself["pareto_spearman"] == 1
    assert summary.loc["reference seed 1", "archs"] == 3
    assert summary["spearman"].between(-1, 1).all()
    assert (summary.loc[["one-epoch", "rung-1", "rung-2"], "cpu_seconds_per_arch"] > 0).all()
    page = (out / "report.html").read_text()
    assert page.count("Plotly.newPlot") == 1 and "<script src=" not in page
    assert "reference seed 1" in run.stdout
    # Rerunning the same run trains nothing again.
    argv = ["--preset", "ci", "--reference", str(reference), "--out", str(tmp_path),
            "--run", "ci"]
    code, out_again, _ = run_script("bench_fidelity.py", argv, capsys)
    assert code == 0 and "0 to run" in out_again
    # A second run on a folder in use is refused before it trains anything.
    with hold_folder(out):
        code, _, err = run_script("bench_fidelity.py", argv, capsys)
    assert code == 2 and err == (
        f"error: {out} is in use by pid {os.getpid()} on {os.uname().nodename}: wait for it "
        "to end, or give another run folder\n")


def test_bad_input_is_one_error_line(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    def run(script: str, *args: str) -> tuple[int, str]:
        code, _, err = run_script(script, list(args), capsys)
        return code, err

    code, err = run("bench_fidelity.py", "--proxies", "nope", "--out", str(tmp_path))
    assert code == 2 and err.startswith("error: unknown proxies nope")
    code, err = run("bench_fidelity.py", "--reference", str(tmp_path / "none.csv"),
                    "--out", str(tmp_path))
    assert code == 2 and "reference_set.py" in err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    code, err = run("reference_set.py", "--out", str(tmp_path / "bad.csv"))
    assert code == 2 and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "cut.csv").write_text('name,seed,arch\nnarrow,0,"{""stages"": [')  # cut short
    code, err = run("bench_fidelity.py", "--reference", str(tmp_path / "cut.csv"),
                    "--out", str(tmp_path))
    assert code == 2 and err.startswith(
        f"error: {tmp_path / 'cut.csv'}: not a readable reference-set file (")
    assert len(err.strip().splitlines()) == 1
    code, err = run("reference_set.py", "--preset", "ci", "--out", str(tmp_path / "r.csv"),
                    "--front-of", str(tmp_path / "none.db"))
    assert code == 2 and err == f"error: --front-of {tmp_path / 'none.db'}: no such study file\n"
    assert not (tmp_path / "none.db").exists()
    held = tmp_path / "held"
    with hold_folder(held):  # another reference_set.py writing a CSV there
        code, err = run("reference_set.py", "--preset", "ci", "--out", str(held / "r.csv"))
    assert code == 2 and err == (
        f"error: {held} is in use by pid {os.getpid()} on {os.uname().nodename}: wait for it "
        "to end, or give --out a file in another folder\n")
    assert not (held / "r.csv").exists()
