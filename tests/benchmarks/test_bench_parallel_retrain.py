"""bench_parallel_retrain.py: its bad flags and a missing dataset end in one ``error:`` line
before any training (the timings themselves are for a person to run)."""

from __future__ import annotations

import pytest

from search.data import FASHION_MNIST_ENV
from tests.benchmarks.scripts import run_script


@pytest.mark.parametrize(("flags", "message"), [
    (["--images", "0"], "error: argument --images: "),
    (["--count", "4"], "error: argument --count: invalid choice"),
])
def test_bad_flags_are_one_error_line(capsys, flags, message) -> None:
    code, out, err = run_script("bench_parallel_retrain.py", flags, capsys)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1 and out == ""


def test_a_missing_dataset_is_one_error_line(tmp_path, monkeypatch, capsys) -> None:
    # An empty cache too: a decoded copy there would answer without the files.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "no-fashion-here"))
    code, out, err = run_script("bench_parallel_retrain.py", ["--count", "1"], capsys)
    assert code == 2 and err.startswith("error: ") and "fashion" in err.lower()
    assert err.count("\n") == 1 and out == ""
