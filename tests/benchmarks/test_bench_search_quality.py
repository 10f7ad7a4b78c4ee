"""The search-quality benchmark's ``--preset ci`` run: real Ray searches, synthetic data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from search.reporting.quality import CURVE_COLUMNS
from space.files import LOCK_FILE, hold_folder
from tests.benchmarks.scripts import run_script
from tests.search.test_search_e2e import _env, _own_ray_tmp

pytestmark = pytest.mark.slow
BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "bench_search_quality.py"


def _run_preset(out: Path, preset: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """The benchmark's ``preset`` into ``out/ci``, with Ray of its own; it must succeed.
    One trial at a time: each search's Tune run starts its own workers (~9 CPU-s each
    here), and these trials take less than one such start."""
    with _own_ray_tmp() as ray_tmp:
        run = subprocess.run([sys.executable, str(BENCHMARK), "--preset", preset,
                              "--out", str(out), "--run", "ci", "--max-concurrent", "1",
                              *flags],
                             env=_env(ray_tmp), capture_output=True, text=True, timeout=600,
                             check=False)
    assert run.returncode == 0, run.stderr
    return run


def test_ci_preset_writes_one_row_per_sampler_seed_and_trial(tmp_path: Path) -> None:
    run = _run_preset(tmp_path, "ci")
    out = tmp_path / "ci"
    curves = pd.read_csv(out / "curves.csv")
    assert tuple(curves.columns) == CURVE_COLUMNS
    # ci: samplers random and tpe, seeds 0 and 1, 2 trials for tpe and twice as many for
    # random (is a sampler's N worth random's 2N?), no duplicates expected.
    assert len(curves) == 2 * (2 + 4)
    assert not curves.duplicated(["sampler", "seed", "trial"]).any()
    assert set(curves["sampler"]) == {"random", "tpe"} and set(curves["seed"]) == {0, 1}
    for (sampler, _), run_curve in curves.groupby(["sampler", "seed"]):
        trials = 4 if sampler == "random" else 2
        assert sorted(run_curve["trial"]) == list(range(trials))
        assert run_curve["hypervolume"].is_monotonic_increasing
        assert run_curve["wall_seconds"].is_monotonic_increasing
        assert run_curve["trained"].iat[-1] == trials
    assert curves["duplicate"].dtype == bool
    page = (out / "report.html").read_text()
    # hypervolume against trials, wall time and epochs; the fronts; the CSE share
    assert page.count("Plotly.newPlot") == 5 and "<script src=" not in page
    epochs = curves.groupby(["sampler", "seed"])["epochs"].last()  # 1 epoch each
    assert (epochs.loc["tpe"] == 2).all() and (epochs.loc["random"] == 4).all()
    assert "after 2" in run.stdout and "/ random after 4 [95%]" in run.stdout
    assert (out / "summary.txt").is_file()
    # The paper's rule: per search and stage, the CSE share on its front and the rest.
    shares = pd.read_csv(out / "cse_shares.csv")
    assert len(shares.groupby(["run", "seed"])) == 4 and shares["front"].between(0, 1).all()
    assert "fronts prefer CSE (interval of the difference clear of 0) in:" in run.stdout


def test_ci_mo_asha_preset_compares_schedulers_on_epochs(tmp_path: Path) -> None:
    # mo-asha's searches with another sampler than fifo's, which stays tpe
    run = _run_preset(tmp_path, "ci-mo-asha", "--samplers", "tpe-spread-rungs",
                      "--fifo-sampler", "tpe")
    curves = pd.read_csv(tmp_path / "ci" / "curves.csv")
    # ci-mo-asha: tpe under fifo (2 trials of 3 epochs) and mo-asha (3 x 2 trials).
    last = curves.groupby("sampler").last()
    assert set(last.index) == {"tpe", "tpe-spread-rungs_mo-asha"}
    assert last.loc["tpe", "trained"] == 2 and last.loc["tpe", "epochs"] == 6
    assert last.loc["tpe-spread-rungs_mo-asha", "trained"] == 6
    pruned = curves[curves["state"] == "PRUNED"]
    assert (pruned["sampler"] == "tpe-spread-rungs_mo-asha").all()
    assert last.loc["tpe-spread-rungs_mo-asha", "epochs"] <= 6 * 3 - 2 * len(pruned)
    assert run.stdout.count("epochs to tpe final") == 1
    summary = (tmp_path / "ci" / "summary.txt").read_text()
    assert "tpe-spread-rungs_mo-asha" in summary
    assert "Architectures trained to the end by a run and by tpe on the same seed" in summary


@pytest.mark.parametrize(("flag", "value", "error"), [
    ("--samplers", "cmaes", "error: unknown sampler(s) cmaes; choose from "),
    ("--schedulers", "fifo,hyperband",
     "error: unknown scheduler(s) hyperband; choose from fifo, mo-asha\n"),
    ("--presets", "paper-mix,resnet", "error: unknown preset(s) resnet; choose from mobilenetv2"),
    ("--trials", "-3", "error: --trials must be a positive integer, got -3\n"),
    ("--seeds", "0", "error: --seeds must be a positive integer, got 0\n"),
    ("--fifo-sampler", "tpe", "error: --fifo-sampler is for a scheduler comparison: add "
                              "--schedulers fifo,mo-asha\n"),
])
def test_a_bad_name_is_one_error_line(flag: str, value: str, error: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_script("bench_search_quality.py", [flag, value, "--out", str(tmp_path)],
                              capsys)
    assert code == 2 and err.startswith(error)
    assert len(err.splitlines()) == 1 and not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["", "tpe,random", "cmaes"])
def test_fifo_sampler_takes_one_known_sampler(value: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_script("bench_search_quality.py", [
        "--preset", "ci-mo-asha", "--fifo-sampler", value, "--out", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert ("unknown sampler(s) cmaes" if value == "cmaes"
            else f"--fifo-sampler takes one sampler, got {value!r}") in err
    assert not any(tmp_path.iterdir())


def test_a_run_folder_in_use_is_refused_before_any_search(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with hold_folder(tmp_path / "ci"):
        code, _, err = run_script("bench_search_quality.py", ["--preset", "ci", "--out",
                                                              str(tmp_path), "--run", "ci"],
                                  capsys)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'ci'} is in use")
    assert len(err.splitlines()) == 1
    assert [p.name for p in (tmp_path / "ci").iterdir()] == [LOCK_FILE]  # no study begun
