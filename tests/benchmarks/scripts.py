"""A benchmark script's ``main(argv)`` run in this process, for the checks that end in an
error line before any work: as a subprocess, each would spend ~8 s of CPU importing torch,
Ray and plotly first. The runs that do the work stay subprocesses, as a user runs them."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@cache
def _script(name: str) -> ModuleType:
    path = BENCHMARKS / name
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their own module up there
    spec.loader.exec_module(module)
    return module


def run_script(name: str, argv: list[str],
               capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``benchmarks/<name>``'s exit status, stdout and stderr for ``argv``."""
    code = _script(name).main(argv)
    out, err = capsys.readouterr()
    return code, out, err
