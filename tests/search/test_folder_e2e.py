"""Your own images end to end: an image folder -> search -> report -> export -> ONNX ->
a class name for one image file. Real Ray, real training, on shapes a tiny network learns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from search import export, predict, report
from tests.search.folders import CLASSES, make_image_folder, write_image
from tests.search.test_search_e2e import _env, _own_ray_tmp

pytestmark = pytest.mark.slow

STUDY = "folder-shapes-smoke"  # the default name: the folder's slug and the budget


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An image folder and the results dir of a finished search of it."""
    tmp_path = tmp_path_factory.mktemp("folder-search")
    folder = make_image_folder(tmp_path / "shapes", per_class=40)
    results = tmp_path / "results"
    with _own_ray_tmp() as ray_tmp:
        run = subprocess.run(
            [sys.executable, "-m", "search.run", "--dataset", f"folder:{folder}",
             "--budget", "smoke", "--trials", "3", "--input-size", "16", "--epochs", "2",
             "--subset", "1", "--batch-size", "16", "--lr", "0.05", "--val-fraction", "0.2",
             "--sampler", "random", "--results-dir", str(results)],
            env=_env(ray_tmp), capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    return folder, results


def test_folder_search_report_export_and_predict(searched: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder, results = searched
    storage = f"sqlite:///{results / STUDY}.db"
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert study.user_attrs["class_names"] == list(CLASSES)
    assert study.user_attrs["dataset"] == f"folder:{folder}"
    assert study.user_attrs["data_source"]["test"]["from"] == "carved"
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3

    args = ["--study", STUDY, "--results-dir", str(results)]
    assert report.main([*args, "--no-dashboard"]) == 0
    assert (results / STUDY / "report.html").is_file()
    assert export.main([*args, "--top", "1", "--retrain-epochs", "1"]) == 0
    (exported,) = (results / STUDY / "export").iterdir()
    model = json.loads((exported / "model.json").read_text())
    assert model["class_names"] == list(CLASSES)
    metrics = json.loads((exported / "metrics.json").read_text())
    assert metrics["onnx"]["max_abs_diff"] < 1e-4
    assert 0 <= metrics["test_accuracy"] <= 1

    capsys.readouterr()
    image = write_image(tmp_path / "new" / "shape.png", "red-square", np.random.default_rng(7))
    assert predict.main([str(exported), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and line.split(": ")[1].split(" (")[0] in CLASSES


def test_a_changed_folder_is_refused_by_export_and_report(
        searched: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    folder, results = searched
    storage = f"sqlite:///{results / STUDY}.db"
    recorded = optuna.load_study(study_name=STUDY, storage=storage).user_attrs
    args = ["--study", STUDY, "--results-dir", str(results)]
    # One more image in a class: the carved test split is drawn again from the new content.
    added = write_image(folder / CLASSES[0] / "added.png", CLASSES[0], np.random.default_rng(3))
    capsys.readouterr()
    try:
        for main, flags in ((export.main, ["--top", "1", "--retrain-epochs", "1"]),
                            (report.main, ["--no-dashboard"])):
            assert main([*args, *flags]) == 2
            out, err = capsys.readouterr()
            assert out == "" and err.count("\n") == 1, err
            assert err.startswith(f"error: image folder {folder} has changed since study "
                                  f"'{STUDY}' was run on it (files added, removed or modified)")
    finally:
        added.unlink()
    # No test accuracy of the changed folder reached the study.
    assert optuna.load_study(study_name=STUDY, storage=storage).user_attrs == recorded


@pytest.mark.parametrize(("layout", "message"), [
    ("missing", "does not exist"),
    ("one class", "needs at least 2"),
])
def test_bad_folders_stop_the_search_before_ray_starts(
        tmp_path: Path, layout: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from search.run import main

    folder = tmp_path / "imgs"
    if layout == "one class":
        make_image_folder(folder, per_class=3, classes=("only",))
    assert main(["--dataset", f"folder:{folder}", "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()
