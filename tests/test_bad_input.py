"""Every command line over every hostile input: one ``error:`` line, exit status 2.

The cases are the ones a user found still ended in a traceback (issue 11). Each runs
in-process through the command's ``main(argv)``; none reaches Ray or training, so the
whole table takes seconds. Warnings count as stray stderr lines, so none may be raised.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from optuna.trial import create_trial

from cse_nets import summary
from cse_nets.latency import cli as latency
from search import export, report, run, train
from space import preset
from tests.search.folders import make_image_folder
from tests.search.studies import ROWS, make_study
from tests.search.test_export import write_onnx_export

MAINS: dict[str, Callable[[list[str] | None], int]] = {
    "summary": summary.main, "train": train.main, "run": run.main, "report": report.main,
    "export": export.main, "latency": latency.main,
}
NESTING = 200_000
INF = float("inf")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the backlog does) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _arch_file(tmp: Path, **stage0: int) -> str:
    data = json.loads(preset("paper-mix").to_json())
    data["stages"][0].update(stage0)
    path = tmp / "huge.json"
    path.write_text(json.dumps(data))
    return str(path)


def _write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def _study(tmp: Path, **kwargs: object) -> str:
    storage = f"sqlite:///{tmp / 'studies.db'}"
    make_study(storage, **kwargs)
    return storage


def _infinite_params(tmp: Path) -> str:
    """A complete trial whose values are finite but whose params attribute is inf."""
    storage = f"sqlite:///{tmp / 'studies.db'}"
    study = make_study(storage, rows=ROWS[:2])
    study.add_trial(create_trial(values=[0.9, 1000], user_attrs={
        "arch": ROWS[1].arch.to_json(indent=None), "params": INF, "macs": 10}))
    return storage


def _other_schema(tmp: Path) -> str:
    """A study database stamped with an older Optuna schema, as `optuna storage upgrade`
    would find it."""
    storage = _study(tmp)
    with sqlite3.connect(tmp / "studies.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    return storage


def _study_args(storage: str) -> list[str]:
    return ["--study-name", "demo", "--storage", storage]


def _on_synthetic(*flags: str) -> list[str]:
    return ["--dataset", "synthetic", *flags]


def _latency(tmp: Path, *flags: str) -> list[str]:
    """Nothing measured, and any table kept under ``tmp``."""
    return [*flags, "--no-measure", "--cache-dir", str(tmp / "latency")]


# (command, case) -> argv maker and a fragment the one line must hold
CASES: dict[tuple[str, str], tuple[Callable[[Path, int], list[str]], str]] = {
    ("summary", "a stage with c = 10^9"): (
        lambda t, p: ["--arch", _arch_file(t, c=10**9), "--dataset", "cifar10"], "estimate"),
    ("summary", "a stage with n = 10^6"): (
        lambda t, p: ["--arch", _arch_file(t, n=10**6), "--dataset", "cifar10"], "estimate"),
    ("summary", "input 3x99999x99999"): (
        lambda t, p: ["--arch", "paper-mix", "--input", "3x99999x99999"], "estimate"),
    ("summary", "architecture nested 200,000 deep"): (
        lambda t, p: ["--arch", _write(t, "deep.json", "[" * NESTING + "]" * NESTING),
                      "--dataset", "cifar10"], "nested too deeply"),
    ("summary", "architecture file /dev/zero"): (
        lambda t, p: ["--arch", "/dev/zero", "--dataset", "cifar10"], "/dev/zero"),
    ("summary", "binary architecture file"): (
        lambda t, p: ["--arch", _write(t, "arch.json", bytes(range(256))),
                      "--dataset", "cifar10"], "arch.json is not UTF-8"),
    ("summary", 'architecture with "format": true'): (
        lambda t, p: ["--arch", _write(t, "true.json", preset("paper-mix").to_json().replace(
            '"format": 1', '"format": true')), "--dataset", "cifar10"], "format must be 1"),
    ("train", "input size 100000"): (
        lambda t, p: ["--arch", "paper-mix", *_on_synthetic("--input-size", "100000")],
        "estimate"),
    ("train", "architecture nested 200,000 deep"): (
        lambda t, p: ["--arch", _write(t, "deep.json", '{"a":[' * (NESTING // 2) + "1"
                                       + "]}" * (NESTING // 2)),
                      "--dataset", "synthetic"], "nested too deeply"),
    ("train", "architecture file /dev/zero"): (
        lambda t, p: ["--arch", "/dev/zero", "--dataset", "synthetic"], "larger than"),
    ("train", "input size 0"): (  # the same flag as run's (search.data.arguments)
        lambda t, p: ["--arch", "paper-mix", *_on_synthetic("--input-size", "0")],
        "--input-size: must be a positive integer"),
    ("run", "input size 0"): (
        lambda t, p: _on_synthetic("--input-size", "0"),
        "--input-size: must be a positive integer"),
    ("run", "input size 100000"): (
        lambda t, p: _on_synthetic("--input-size", "100000"), "estimate"),
    ("run", "in-memory SQLite storage"): (
        lambda t, p: _on_synthetic("--storage", "sqlite://"), "in-memory"),
    ("run", "empty storage"): (lambda t, p: _on_synthetic("--storage", ""), "malformed"),
    ("run", "max params 0"): (lambda t, p: _on_synthetic("--max-params", "0"),
                              "max-params must be a positive integer, got 0"),
    ("run", "max params 1,000: below the smallest network"): (
        lambda t, p: _on_synthetic("--max-params", "1000"),
        "--max-params 1,000 is below the smallest network of the search space on 3x32x32"),
    ("run", "empty study name"): (lambda t, p: _on_synthetic("--study-name", ""), "study name"),
    ("run", "empty study name, --study spelling"): (
        lambda t, p: _on_synthetic("--study", ""), "study name"),
    ("run", "missing image folder"): (
        lambda t, p: ["--dataset", f"folder:{t / 'no-such-folder'}"], "does not exist"),
    ("run", "address open but not Ray"): (
        lambda t, p: _on_synthetic("--address", f"127.0.0.1:{p}"), "not as a Ray cluster"),
    ("run", "storage of another Optuna schema"): (
        lambda t, p: _on_synthetic("--storage", _other_schema(t), "--study-name", "demo"),
        "optuna storage upgrade --storage sqlite:///"),
    ("export", "top 0"): (lambda t, p: [*_study_args(_study(t)), "--top", "0"], "--top"),
    ("latency", "input 3x99999x99999"): (
        lambda t, p: _latency(t, "--arch", "paper-mix", "--input", "3x99999x99999"),
        "estimate"),
    ("latency", "10^18 classes"): (
        lambda t, p: _latency(t, "--arch", "paper-mix", "--input", "3x32x32", "--classes",
                              str(10**18)), "estimate"),
    ("latency", "batch 10^9"): (
        lambda t, p: _latency(t, "--arch", "paper-mix", "--dataset", "cifar10", "--batch",
                              str(10**9)), "batch of 1,000,000,000"),
    ("latency", "a stage with c = 200,000"): (
        lambda t, p: _latency(t, "--arch", _arch_file(t, c=200_000), "--dataset", "cifar10"),
        "estimate"),
    ("train", "seed 10^20"): (
        lambda t, p: ["--arch", "paper-mix", "--dataset", "synthetic", "--seed", str(10**20)],
        "seed must be at most"),
    ("run", "seed 2^32"): (lambda t, p: _on_synthetic("--seed", str(2**32)),
                           "seed must be at most"),
}
# An integer no size or count can be: once an OverflowError deep in the arithmetic.
CASES.update({(command, "an integer of 401 digits"): (
    lambda t, p: ["--arch", _arch_file(t, c=10**400), "--dataset", "synthetic"],
    "integer of 401 digits") for command in ("summary", "train")})
CASES["latency", "an integer of 401 digits"] = (
    lambda t, p: _latency(t, "--arch", _arch_file(t, c=10**400), "--dataset", "synthetic"),
    "integer of 401 digits")
# Both read a study the same way, so both meet the same hostile studies.
STUDY_CASES: dict[str, tuple[Callable[[Path, int], list[str]], str]] = {
    "study name ../escape": (  # --study: the alias of --study-name
        lambda t, p: ["--study", "../escape", "--storage", _study(t, name="../escape")],
        "study name"),
    "params attribute inf": (lambda t, p: _study_args(_infinite_params(t)), "non-finite"),
    "input shape 3x100000x100000": (
        lambda t, p: _study_args(_study(t, input_shape=(3, 100_000, 100_000))), "estimate"),
    "storage of another Optuna schema": (
        lambda t, p: _study_args(_other_schema(t)), "optuna storage upgrade"),
    "empty storage": (lambda t, p: _study_args(""), "malformed"),
}
CASES.update({(command, case): made for command in ("report", "export")
              for case, made in STUDY_CASES.items()})


@pytest.mark.parametrize(("command", "case"), list(CASES), ids=[f"{c}: {k}" for c, k in CASES])
def test_bad_input_is_one_error_line_and_status_2(
        command: str, case: str, tmp_path: Path, silent_port: int,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # defaults such as results/ land here
    make_argv, fragment = CASES[command, case]
    argv = make_argv(tmp_path, silent_port)
    if command in ("run", "report", "export"):
        argv += ["--results-dir", str(tmp_path / "results")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = MAINS[command](argv)
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert "Traceback" not in out + err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught
    assert not (tmp_path / "results" / "ray").exists()  # nothing ran
    assert not list(tmp_path.glob("results/*.db"))  # no study created
    assert not (tmp_path / "escape").exists()


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def _folder_with_a_fifo(tmp: Path) -> str:
    folder = make_image_folder(tmp / "shapes", 3)
    _fifo(folder / "red-square" / "pipe.png")
    return f"folder:{folder}"


# Each names a named pipe (FIFO) where a file belongs: once a read that waited forever for
# a writer, deaf to Ctrl-C. In a subprocess, so that a wait fails the test, not the run.
FIFO_CASES: dict[str, Callable[[Path], list[str]]] = {
    "summary --arch": lambda t: ["cse_nets.summary", "--arch", _fifo(t / "arch.json"),
                                 "--dataset", "cifar10"],
    "predict image": lambda t: ["search.predict", str(write_onnx_export(t / "export")),
                                _fifo(t / "photo.png")],
    "an image in a folder, --strict-images": lambda t: [
        "search.train", "--arch", "paper-mix", "--dataset", _folder_with_a_fifo(t),
        "--strict-images", "--data-dir", str(t / "data"), "--device", "cpu"],
}


@pytest.mark.parametrize("case", list(FIFO_CASES))
def test_a_named_pipe_is_refused_without_waiting(case: str, tmp_path: Path) -> None:
    argv = FIFO_CASES[case](tmp_path)
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TQDM_DISABLE": "1"})  # no progress bars
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "pipe" in done.stderr
