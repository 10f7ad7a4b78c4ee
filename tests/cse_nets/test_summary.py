from __future__ import annotations

import subprocess
import sys

import pytest

from cse_nets.summary import main
from space import preset


def test_summary_prints_stages_and_exact_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--arch", "paper-mix", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert str(preset("paper-mix")) in out
    assert "cse_c64_n4_s2_r16_cap8" in out and "32->16" in out
    assert out.strip().splitlines()[-1].split()[:2] == ["total", "362,994"]


def test_summary_reads_json_and_explicit_shape(tmp_path, capsys) -> None:
    path = tmp_path / "arch.json"
    path.write_text(preset("paper-mix").to_json())
    assert main(["--arch", str(path), "--input", "3x32x32", "--classes", "100"]) == 0
    assert "478,284" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--arch", "resnet50", "--dataset", "cifar10"],
        ["--arch", "paper-mix", "--dataset", "mnist"],
        ["--arch", "paper-mix", "--input", "3x32"],
        ["--arch", "paper-mix", "--input", "3x32x16"],
        ["--arch", "paper-mix", "--input", "3x32x32", "--classes", "0"],
        ["--arch", "paper-mix"],
        ["--arch", "paper-mix", "--input", "3x4x4"],
        ["--arch", "missing.json", "--dataset", "cifar10"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_runs_as_a_module_and_rejects_a_malformed_file(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "cse_nets.summary", "--arch", str(path),
                           "--dataset", "cifar10"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
