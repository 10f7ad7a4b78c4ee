"""``search.export --int8``: model.int8.onnx beside model.onnx, tested, timed, runnable by
``search.predict --int8``; and the report's int8 op comparison."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from search import export, predict, report
from search.data.augment import Normalize
from search.reporting.figures import op_latency_figure
from space import InputShape
from tests.search import test_export
from tests.search.test_export import ROWS, synthetic_study

# The export tests' fixtures, shared rather than copied.
storage, synthetic = test_export.storage, test_export.synthetic

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _logits(path, images: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.slow
def test_int8_export_agrees_with_fp32_and_records_its_metrics(tmp_path, storage, synthetic,
                                                              capsys):
    synthetic_study(storage, synthetic.info, rows=ROWS[:1])  # TINY: a BTN and a CSE stage
    code = export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--retrain-epochs", "1", "--int8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "int8 test acc" in out
    folder = tmp_path / "demo" / "export" / "0-bc-3k"
    metrics = json.loads((folder / "metrics.json").read_text())
    int8 = metrics["int8"]
    assert int8["file"] == "model.int8.onnx" and (folder / "model.int8.onnx").is_file()
    assert 0 < int8["size_kb"] < metrics["onnx"]["size_kb"]
    assert int8["calibration_images"] == 256
    for key in ("test_accuracy", "fp32_onnx_test_accuracy", "agreement_with_fp32"):
        assert 0 <= int8[key] <= 1
    # onnxruntime's fp32 run scores what PyTorch scored on the same test split.
    assert int8["fp32_onnx_test_accuracy"] == pytest.approx(metrics["test_accuracy"],
                                                            abs=0.002)
    assert int8["float_ops"]["PRelu"] >= 2  # the CSE block's PReLUs have no int8 kernel
    assert int8["latency"]["measured_ms"] > 0 and int8["latency"]["batch"] == 1
    assert metrics["latency"]["predicted_blocks_ms"] > 0

    # Stated tolerance, on test images: the same class for at least 90% of them, and
    # logits within 15% of the fp32 logits' range.
    normalize = Normalize(synthetic.info.mean, synthetic.info.std, torch.device("cpu"))
    images = normalize(synthetic.test[0][:256]).contiguous().numpy()
    fp32, quantised = (_logits(folder / name, images)
                       for name in ("model.onnx", "model.int8.onnx"))
    assert (fp32.argmax(1) == quantised.argmax(1)).mean() >= 0.9
    assert np.abs(quantised - fp32).max() <= 0.15 * np.ptp(fp32)
    assert int8["agreement_with_fp32"] >= 0.9

    # search.predict runs either file on an image file.
    path = tmp_path / "test0.png"
    Image.fromarray(synthetic.test[0][0].permute(1, 2, 0).numpy()).save(path)
    assert predict.main([str(folder), str(path), "--int8"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ")
    assert predict.main([str(folder), str(path)]) == 0


def test_int8_without_retraining_is_one_error_line(tmp_path, storage, synthetic, capsys):
    synthetic_study(storage, synthetic.info, rows=ROWS[:1])
    assert export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--int8"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("error: --int8 quantises the retrained model: give "
                                 "--retrain-epochs too\n")


def test_predict_int8_without_the_file_is_one_error_line(tmp_path, storage, synthetic, capsys):
    synthetic_study(storage, synthetic.info, rows=ROWS[:1])
    assert export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path)]) == 0
    folder = tmp_path / "demo" / "export" / "0-bc-3k"
    capsys.readouterr()
    assert predict.main([str(folder), str(tmp_path / "x.png"), "--int8"]) == 2
    err = capsys.readouterr().err
    assert "has no model.int8.onnx" in err and err.count("\n") == 1


def test_the_report_compares_ops_on_the_study_target_and_on_int8(monkeypatch) -> None:
    shape = InputShape(3, 16, 10)
    both = report.op_comparisons(shape, "cpu-onnxruntime")
    assert list(both) == ["cpu-onnxruntime", "cpu-onnxruntime-int8"]
    assert all(len(rows) == 7 for rows in both.values())  # paper-mix's seven stages
    lines = report.op_latency_lines(both)
    assert len(lines) == 2 and "CSE/BTN latency on cpu-onnxruntime-int8" in lines[1]
    figure = op_latency_figure(both, "paper-mix")
    assert [bar.name for bar in figure.data] == [
        "as BTN blocks, cpu-onnxruntime", "as CSE blocks, cpu-onnxruntime",
        "as BTN blocks, cpu-onnxruntime-int8", "as CSE blocks, cpu-onnxruntime-int8"]
    assert list(report.op_comparisons(shape, "cpu-onnxruntime-int8")) == [
        "cpu-onnxruntime-int8"]
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # no quantiser
    assert list(report.op_comparisons(shape, "cpu-onnxruntime")) == ["cpu-onnxruntime"]
