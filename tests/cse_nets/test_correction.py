"""The whole-network correction of the block table: the fit, its file, and its use."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cse_nets.latency.correction import (
    FEATURES,
    Correction,
    correction_for,
    features,
    fit_coefficients,
    nnls,
    predict_corrected,
    sample_archs,
)
from cse_nets.latency.table import predict_latency
from cse_nets.latency.timing import Timing
from space import InputShape, preset
from tests.cse_nets.test_latency import fake_table

SHAPE = InputShape(3, 8, 4)
TRUE = {"stem": 1.0, "btn": 0.9, "cse": 0.8, "head": 1.1, "weights_mb": 2e-5}


def test_nnls_solves_and_keeps_coefficients_non_negative() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((30, 4))
    x = np.array([0.5, 0.0, 2.0, 1.0])
    assert np.allclose(nnls(a, a @ x), x, atol=1e-9)
    # The unconstrained answer has a negative coefficient: NNLS pins it at 0 and is
    # optimal there (the gradient points into the constraint).
    b = a @ np.array([1.0, -1.0, 1.0, 0.5])
    found = nnls(a, b)
    assert (found >= 0).all() and found[1] == 0
    assert (a.T @ (b - a @ found))[found == 0].max() <= 1e-9


class FakeNetwork:
    """Measures a network as TRUE's coefficients applied to the table's prediction."""

    def __init__(self, table) -> None:
        self.table = table
        self.calls = 0

    def __call__(self, arch) -> Timing:
        self.calls += 1
        prediction = predict_latency(arch, SHAPE, self.table.target, table=self.table)
        found = features(arch, SHAPE, prediction)
        seconds = prediction.overhead_s + sum(TRUE[name] * found[name] for name in FEATURES)
        return Timing(seconds, 0.0, seconds, 1)


def test_the_fit_recovers_known_factors_and_is_kept_beside_the_table(tmp_path) -> None:
    table, _ = fake_table(tmp_path)
    network = FakeNetwork(table)
    correction = correction_for(table, SHAPE, networks=12, measurer=network)
    assert network.calls == 12
    # The ridge pulls a little towards the plain sum; the factors stay close to the truth.
    for name in ("btn", "cse", "head"):
        assert correction.coefficients[name] == pytest.approx(TRUE[name], abs=0.05)
    files = list(tmp_path.glob("*-correction-*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    assert saved["key"]["shape"] == "3x8x8/4" and len(saved["fit"]) == 12

    again = correction_for(table, SHAPE, networks=12, measurer=network)
    assert network.calls == 12 and again.coefficients == correction.coefficients
    # Another shape, fit size or seed is another correction.
    correction_for(table, InputShape(3, 8, 5), networks=12, measurer=network)
    correction_for(table, SHAPE, networks=12, seed=3, measurer=network)
    assert network.calls == 36 and len(list(tmp_path.glob("*-correction-*.json"))) == 3


def test_a_damaged_correction_is_fitted_again_with_a_warning(tmp_path) -> None:
    table, _ = fake_table(tmp_path)
    network = FakeNetwork(table)
    correction_for(table, SHAPE, networks=4, measurer=network)
    (path,) = tmp_path.glob("*-correction-*.json")
    path.write_text('{"key": "no"}')
    with pytest.warns(UserWarning, match="fitting it again"):
        correction_for(table, SHAPE, networks=4, measurer=network)
    assert network.calls == 8


def test_a_corrected_prediction_applies_the_coefficients(tmp_path) -> None:
    table, _ = fake_table(tmp_path)
    correction = Correction(dict(TRUE), networks=1, seed=0)
    arch = preset("paper-mix")
    shape = InputShape(3, 32, 10)
    got = predict_corrected(arch, shape, "cpu-torch", table=table, correction=correction)
    found = features(arch, shape, got.blocks)
    assert found["btn"] > 0 and found["cse"] > 0 and found["weights_mb"] == pytest.approx(
        362_994 * 4 / 1e6)
    assert math.isclose(got.total_s, got.blocks.overhead_s
                        + sum(TRUE[name] * found[name] for name in FEATURES))
    # With every factor 1 and no weight term the correction is the plain sum of blocks.
    plain = Correction(dict.fromkeys(FEATURES, 1.0) | {"weights_mb": 0.0}, 1, 0)
    assert math.isclose(predict_corrected(arch, shape, "cpu-torch", table=table,
                                          correction=plain).total_s, got.blocks.total_s)


def test_fit_needs_networks_and_samples_are_seeded() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit_coefficients([])
    assert sample_archs(3, 0, 32) == sample_archs(3, 0, 32) != sample_archs(3, 1, 32)
