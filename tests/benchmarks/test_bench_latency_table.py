"""The latency benchmark's ``--preset ci``: every target, fitted and held-out networks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.benchmarks.scripts import run_script

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "bench_latency_table.py"
COLUMNS = ["target", "predictor", "networks", "within_10", "within_20", "median_error",
           "worst_error", "spearman"]


def _run(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, str(BENCHMARK), *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_ci_preset_scores_both_predictors_and_the_noise_floor_per_target(tmp_path) -> None:
    run = _run(tmp_path, "--preset", "ci", "--csv", str(tmp_path / "summary.csv"))
    assert run.returncode == 0, run.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == COLUMNS
    targets = ["cpu-onnxruntime", "cpu-torch", "cpu-onnxruntime-int8"]
    predictors = ["sum of blocks", "corrected", "repeat"]
    assert list(zip(summary["target"], summary["predictor"], strict=True)) == [
        (t, p) for t in targets for p in predictors]
    assert (summary["networks"] == 3).all()  # ci: 3 held-out networks per target
    for column in ("within_10", "within_20"):
        assert summary[column].between(0, 1).all()
    assert (summary["within_10"] <= summary["within_20"]).all()
    assert (summary["median_error"] <= summary["worst_error"]).all()
    # The split is said: fitted on 4 networks of seed 0, held out 3 of seed 1.
    assert "correction fitted on 4 others (seed 0)" in run.stdout
    assert "3 networks (seed 1)" in run.stdout


@pytest.mark.parametrize(("flags", "message"), [
    (["--targets", "tpu"], "error: unknown target 'tpu'"),
    (["--seed", "0"], "error: --seed must differ from --fit-seed"),
])
def test_bad_flags_are_one_error_line(tmp_path, capsys, flags, message) -> None:
    code, _, err = run_script("bench_latency_table.py", ["--preset", "ci", *flags], capsys)
    assert code == 2 and err.startswith(message)
    assert err.count("\n") == 1
