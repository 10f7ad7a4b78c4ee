from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from kaleido.errors import KaleidoError
from optuna_dashboard._note import get_note

from cse_nets import build_network, count_parameters
from search import report
from search.study.schema import EXPORT_DIR, TEST_ACCURACY, export_attr
from space import PRESETS, InputShape
from tests.search.studies import BAD_CASES, MIX, ROWS, Row, bad_argv, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = report.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_writes_csv_html_and_dashboard_items(tmp_path, storage, capsys):
    study = make_study(storage)
    study.set_user_attr(export_attr(1), {"test_accuracy": 0.77, "export_dir": "somewhere"})
    code, out, err = run(["--study-name", "demo", "--storage", storage,
                          "--results-dir", str(tmp_path / "res")], capsys)
    assert (code, err) == (0, "")

    trials = pd.read_csv(tmp_path / "res" / "demo" / "trials.csv")
    assert trials["number"].tolist() == list(range(len(ROWS)))
    assert trials["state"].tolist() == ["COMPLETE"] * 5 + ["FAIL"]
    assert trials["arch"][1] == str(MIX)
    assert trials["stage4_op"][1] == "cse" and trials["stage1_op"][1] == "btn"
    assert trials["params"].tolist() == [r.params for r in ROWS]
    assert trials["val_accuracy"].tolist()[:5] == [r.accuracy for r in ROWS[:5]]
    assert trials["test_accuracy"][1] == 0.77 and trials["test_accuracy"].isna().sum() == 5
    assert trials["on_front"].tolist() == [True, True, False, True, False, False]
    assert trials["fail_reason"][5].startswith("NonFiniteLossError")
    assert {"device", "wall_seconds", "macs", "preset"} <= set(trials.columns)

    page = (tmp_path / "res" / "demo" / "report.html").read_text()
    assert "<script src=" not in page  # plotly is inlined: the page works offline
    for text in ("mobilenetv2", "paper-mix", "cse-only", "paper (test accuracy)",
                 "paper: mix", "paper: MNv2-opt", "Pareto front", "retrained: test accuracy",
                 "Share of CSE blocks per stage", "Hypervolume", "Parcoords".lower()):
        assert text in page, text

    assert "front: 3 networks (3 trials)" in out
    assert ("at or below paper-mix (362,994 params): best val acc 78.00% (trial 1, 362,994 "
            "params); paper-mix itself 78.00%") in out
    assert "trial 1 retrained: test acc 77.00%" in out

    graphs = [k for k in study._storage.get_study_system_attrs(study._study_id)
              if k.startswith("dashboard:plot_data:")]
    assert {k.split(":")[2] for k in graphs} == {"front", "hypervolume", "cse-share",
                                                "parallel", "proxy-vs-retrained"}
    assert "front: 3 networks (3 trials)" in get_note(study)
    note = get_note(optuna.trial.Trial(study, study.trials[1]._trial_id))
    assert "| 4 | cse | - | 64 | 4 | 2 | 16 | 8 | 32 |" in note and "on the front" in note


def test_proxy_ranking_against_retrained_test_accuracy(tmp_path, storage, capsys):
    study = make_study(storage)
    # Proxy (val) order 0 > 1 > 3; retrained order 1 > 0 > 3: one pair of three swapped.
    for number, accuracy in ((0, 0.88), (1, 0.90), (3, 0.85)):
        study.set_user_attr(export_attr(number), {TEST_ACCURACY: accuracy,
                                                  EXPORT_DIR: f"export/{number}"})
    code, out, err = run(["--study", "demo", "--storage", storage, "--results-dir",
                          str(tmp_path), "--no-dashboard"], capsys)
    assert (code, err) == (0, "")
    line = ("proxy ranking: Spearman 0.50, Kendall 0.33 over 3 retrained trials "
            "(proxy val accuracy vs retrained test accuracy)")
    assert line in out
    page = (tmp_path / "demo" / "report.html").read_text()
    assert 'id="proxy-vs-retrained"' in page
    assert "Proxy vs retrained: 3 retrained trial(s); Spearman 0.50, Kendall 0.33" in page
    assert "No trial has been retrained yet" not in page


def test_without_retrained_trials_the_page_says_so(tmp_path, storage, capsys):
    make_study(storage, train_config={"epochs": 2, "subset": 0.5})
    code, out, err = run(["--study", "demo", "--storage", storage, "--results-dir",
                          str(tmp_path), "--no-dashboard"], capsys)
    assert (code, err) == (0, "")
    assert ("proxy ranking: not measured in this study (0 retrained trials; retrain more with "
            "search.export --retrain-epochs); 2 epochs on 50% of cifar10 at 32 px: proxy fidelity "
            "not measured (benchmarks/bench_fidelity.py measures it)") in out
    page = (tmp_path / "demo" / "report.html").read_text()
    assert "proxy-vs-retrained" not in page
    assert "No trial has been retrained yet" in page


def test_hypervolume_is_measured_in_decades_below_mobilenetv2(tmp_path, storage, capsys):
    baseline = count_parameters(build_network(PRESETS["mobilenetv2"], InputShape(3, 32, 10)))
    rows = (Row(MIX, 0.5, baseline // 10), Row(MIX, 0.25, baseline // 100))
    make_study(storage, rows=rows)
    code, out, _ = run(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--no-dashboard"], capsys)
    # one and two decades below the baseline: 0.5 * 1 + 0.25 * (2 - 1)
    assert code == 0 and "hypervolume 0.7500" in out


def test_three_objectives_and_a_dataset_the_paper_did_not_use(tmp_path, storage, capsys):
    make_study(storage, dataset="fashion-mnist", input_shape=(1, 28, 28),
               metrics=("val_accuracy", "params", "macs"))
    code, out, err = run(["--study", "demo", "--storage", storage, "--results-dir",
                          str(tmp_path), "--no-dashboard"], capsys)
    assert (code, err) == (0, "")
    page = (tmp_path / "demo" / "report.html").read_text()
    assert "The paper reports no results for fashion-mnist" in page
    assert "paper (cifar10 test accuracy: another dataset)" in page
    assert "macs" in out  # the reference point names both counts


def test_default_storage_lives_in_the_results_dir(tmp_path, capsys):
    make_study(f"sqlite:///{tmp_path / 'demo.db'}")
    code, _, err = run(["--study", "demo", "--results-dir", str(tmp_path), "--no-dashboard"],
                       capsys)
    assert (code, err) == (0, "")
    assert (tmp_path / "demo" / "trials.csv").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="kaleido needs Chromium")
def test_png_copies(tmp_path, storage, capsys):
    make_study(storage)
    code, _, err = run(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--png", "--no-dashboard"], capsys)
    assert (code, err) == (0, "")
    for key in ("front", "hypervolume", "cse-share", "parallel"):
        assert (tmp_path / "demo" / f"{key}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("error", "message"), [
    (TimeoutError(), ": a figure took over 300 s to render"),
    (KaleidoError(1, "bad figure"), " (kaleido needs Chrome or Chromium; on Debian apt-get "
                                    "install chromium): KaleidoError: Error 1: bad figure"),
])
def test_a_figure_kaleido_cannot_render_is_one_error_line(tmp_path, storage, capsys,
                                                          monkeypatch, error, message):
    # What CI once met: kaleido failed a render and the report still said it wrote the PNG.
    def fail(specs, **kwargs):
        raise error

    monkeypatch.setattr(report.kaleido, "write_fig_from_object_sync", fail)
    make_study(storage)
    code, _, err = run(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--png", "--no-dashboard"], capsys)
    assert (code, err) == (2, f"error: PNG export failed{message}\n")


@pytest.mark.parametrize(("case", "message"), BAD_CASES)
def test_bad_input_is_one_line_and_exit_2(tmp_path, storage, capsys, case, message):
    code, out, err = run(bad_argv(tmp_path, storage, case), capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "nothing.db").exists()  # looking does not create a database


def test_a_latency_study_gets_a_latency_front_and_the_op_comparison(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'lat.db'}"
    make_study(storage, metrics=("val_accuracy", "latency_ms"))
    results = tmp_path / "res"
    assert report.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(results), "--no-dashboard"]) == 0
    page = (results / "demo" / "report.html").read_text()
    assert "front-latency" in page and "op-latency" in page
    assert "predicted latency (ms, batch 1) on cpu-onnxruntime" in page
    assert "stages as CSE vs as BTN blocks, CSE/BTN latency" in page
    trials = pd.read_csv(results / "demo" / "trials.csv")
    assert trials.loc[trials["state"] == "COMPLETE", "latency_ms"].gt(0).all()
