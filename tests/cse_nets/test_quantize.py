"""int8: quantising ONNX models, the ``cpu-onnxruntime-int8`` target, and one ``error:`` line
where onnxruntime's quantiser is missing."""

from __future__ import annotations

import math
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from cse_nets.latency.cli import main as latency_main
from cse_nets.latency.measure import (
    INT8_TARGET,
    TARGETS,
    check_target,
    export_onnx_bytes,
    measure_network,
    target_fingerprint,
)
from cse_nets.latency.quantize import float_ops, quantize_onnx, random_batches
from cse_nets.latency.table import LatencyTable, compare_ops, predict_latency
from cse_nets.network import build_network
from search.run import main as run_main
from space import Arch, Stage
from tests.cse_nets.test_latency import FAST, TINY, TINY_SHAPE

BTN_ONLY = Arch(stages=(Stage("btn", c=8, n=2, s=1, t=3), Stage("btn", c=16, n=1, s=2)),
                stem=8, head=32)


@pytest.fixture
def no_quantizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime without its quantiser: importing it fails as if it were not installed."""
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)


def _run(session: onnxruntime.InferenceSession, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_a_quantised_network_loads_and_agrees_with_fp32() -> None:
    network = build_network(BTN_ONLY, TINY_SHAPE, seed=0).eval()
    example = torch.randn(1, *TINY_SHAPE.chw)
    fp32 = export_onnx_bytes(network, example)
    calibration = random_batches((1, *TINY_SHAPE.chw), count=16)
    int8 = quantize_onnx(fp32, calibration)
    assert len(int8) < len(fp32)  # 8-bit weights
    sessions = [onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
                for model in (fp32, int8)]
    x = random_batches((1, *TINY_SHAPE.chw), count=1, seed=1)[0]
    expected, got = (_run(session, x) for session in sessions)
    # Stated tolerance: within 10% of the logits' range, on an input like the calibration's.
    assert np.abs(got - expected).max() <= 0.1 * np.ptp(expected)
    assert float_ops(int8) == {}  # ReLU6 networks quantise end to end


def test_float_ops_names_what_stays_float() -> None:
    network = build_network(TINY, TINY_SHAPE, seed=0).eval()
    example = torch.randn(1, *TINY_SHAPE.chw)
    found = float_ops(quantize_onnx(export_onnx_bytes(network, example),
                                    random_batches((1, *TINY_SHAPE.chw))))
    # The CSE block's two PReLUs and its channel mean have no int8 kernel in onnxruntime.
    assert found["PRelu"] == 2 and found["ReduceMean"] == 1
    assert not any(op.startswith("QLinear") for op in found)


def test_int8_is_a_target_with_its_own_table(tmp_path) -> None:
    assert INT8_TARGET in TARGETS and check_target(INT8_TARGET) == INT8_TARGET
    assert "onnxruntime" in target_fingerprint(INT8_TARGET)
    timing = measure_network(TINY, TINY_SHAPE, INT8_TARGET, protocol=FAST)
    assert 0 < timing.median_s < 1 and math.isfinite(timing.spread_s)
    table = LatencyTable(INT8_TARGET, directory=tmp_path, protocol=FAST)
    assert predict_latency(TINY, TINY_SHAPE, INT8_TARGET, table=table).total_s > 0
    fp32 = LatencyTable("cpu-onnxruntime", directory=tmp_path, protocol=FAST)
    assert fp32.path != table.path
    rows = compare_ops(TINY, TINY_SHAPE, INT8_TARGET, table=table)
    assert [row.op for row in rows] == ["btn", "cse"]
    # Net of the call overhead, a block on 4x4 pixels is within the timing noise and can
    # come out below zero (it did in a .ci/run); test_latency tests the sign on a fake table.
    assert all(math.isfinite(row.btn_s) and math.isfinite(row.cse_s) for row in rows)


@pytest.mark.usefixtures("no_quantizer")
def test_int8_without_the_quantiser_is_a_value_error_saying_so() -> None:
    with pytest.raises(ValueError, match=r"onnxruntime\.quantization"):
        check_target(INT8_TARGET)
    check_target("cpu-onnxruntime")  # the others stay usable


@pytest.mark.usefixtures("no_quantizer")
@pytest.mark.parametrize("main", [
    lambda results: latency_main(["--arch", "paper-mix", "--dataset", "cifar10",
                                  "--no-measure", "--target", INT8_TARGET]),
    lambda results: run_main(["--dataset", "synthetic", "--objectives", "accuracy,latency",
                              "--latency-target", INT8_TARGET, "--results-dir", results]),
], ids=["cse_nets.latency", "search.run"])
def test_int8_target_without_the_quantiser_is_one_error_line(main, capsys, tmp_path) -> None:
    assert main(str(tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: int8 needs onnxruntime's quantiser")
    assert err.count("\n") == 1


@pytest.mark.parametrize("target", ["cpu-onnxruntime-int4", "int8"])
def test_a_bad_latency_target_is_one_error_line(target, capsys, tmp_path) -> None:
    assert run_main(["--dataset", "synthetic", "--objectives", "accuracy,latency",
                     "--latency-target", target, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: unknown target {target!r}") and err.count("\n") == 1
    assert INT8_TARGET in err  # the valid targets are listed
