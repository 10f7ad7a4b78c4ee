"""The GPU check's driver runs end to end in its smoke mode, so the script cannot rot on CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled"}
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out",
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    sections = results["sections"]
    assert list(sections) == ["tests", "steps", "dataloader", "packing", "search"]
    assert "skipped" in sections["tests"]  # never nested in a smoke run
    steps = sections["steps"]["result"]
    assert {"paper-mix b8 eager", "mobilenetv2 b8 eager"} <= set(steps)
    if not torch.cuda.is_available():  # the CPU path has no speed-ups to compare
        assert not any("cuda_graphs" in row for row in steps)
    assert all(row["images_per_s"] > 0 for row in steps.values())
    assert set(sections["packing"]["result"]) == {"2 sharing"}
    search = sections["search"]["result"]
    assert search["trials"] == 2 and search["train_over_wall"] > 0
    table = (tmp_path / "table.txt").read_text()
    assert table.splitlines()[0].startswith("gpu_check on ") and table in run.stdout
