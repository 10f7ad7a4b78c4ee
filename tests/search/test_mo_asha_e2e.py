"""MO-ASHA end to end through ``run_search``, real Ray Tune, a trainable of known curves.

The trainable reports the accuracy curve fixed by a hash of the architecture and constant
costs, so the scheduler's decisions are those of one-objective ASHA on accuracy, computed
here independently: a trial goes on from a rung when fewer than ``count / eta`` of the
accuracies recorded there (its own included) beat it. One trial at a time, so they reach
the rungs in trial-number order.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray import cloudpickle

from search.driver.config import SearchConfig
from search.driver.tune import ray_session, run_search
from search.study.schema import ARCH_KEY, PARTIAL_ACCURACY, PRUNED_EPOCH, PRUNED_RUNG
from search.training.evaluate import Evaluation
from search.trials.trainable import report_evaluation
from space import Arch

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS, ETA, TRIALS = 4, 2, 8  # rungs at epochs 1 and 2
RUNGS = (1, 2)


def curve(arch_json: str) -> list[float]:
    """A learning curve that rises towards a ceiling set by the architecture."""
    ceiling = 0.3 + 0.6 * int(hashlib.sha256(arch_json.encode()).hexdigest()[:8], 16) / 16**8
    return [ceiling * (1 - 0.5 ** epoch) for epoch in range(1, EPOCHS + 1)]


def known_curves(config: dict[str, Any], *, data: Any, train_config: Any, objectives: Any,
                 speedups: Any, memory_fraction: Any) -> None:
    """The trainable: reports ``curve`` epoch by epoch as ``run_trial`` reports training."""
    # mo-asha anneals the schedule at its rungs; a failed check fails the trial, and the test.
    if train_config.anneal_at != RUNGS:
        raise ValueError(f"anneal_at {train_config.anneal_at}, not the rungs {RUNGS}")
    accuracies = curve(config[ARCH_KEY])
    for epoch in range(1, train_config.epochs + 1):
        evaluation = Evaluation(
            arch=Arch.from_json(config[ARCH_KEY]), val_accuracy=accuracies[epoch - 1],
            costs={"params": 1000.0, "macs": 50000.0},
            val_accuracy_per_epoch=tuple(accuracies[:epoch]), train_seconds=0.01 * epoch,
            wall_seconds=0.01 * epoch, device="cpu", seed=0)
        report_evaluation(evaluation, objectives, final=epoch == train_config.epochs)


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers can't import tests


def expected_stops(curves: list[list[float]]) -> list[int | None]:
    """Per trial in arrival order: the rung epoch one-objective ASHA stops it at, or None."""
    recorded: dict[int, list[float]] = {epoch: [] for epoch in RUNGS}
    stops: list[int | None] = []
    for accuracies in curves:
        stop = None
        for epoch in RUNGS:
            mine = accuracies[epoch - 1]
            recorded[epoch].append(mine)
            better = sum(other > mine for other in recorded[epoch])
            if better * ETA >= len(recorded[epoch]):
                stop = epoch
                break
        stops.append(stop)
    return stops


@pytest.fixture
def own_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Ray session of the test's own, in a temp dir of its own; its path."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths are short
    monkeypatch.setenv("RAY_TMPDIR", str(path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with ray_session():  # one Ray for the test's searches, as a benchmark holds one
        yield path
    shutil.rmtree(path, ignore_errors=True)


def test_mo_asha_stops_exactly_the_trials_asha_would_and_records_them_pruned(
        tmp_path: Path, own_ray: Path) -> None:
    config = SearchConfig(dataset="synthetic", budget="smoke", trials=TRIALS, epochs=EPOCHS,
                          input_size=16, subset=0.1, val_fraction=0.1, sampler="random",
                          scheduler="mo-asha", min_epochs=1, reduction_factor=ETA,
                          presets=(), results_dir=tmp_path, max_concurrent=1)
    out = io.StringIO()
    result = run_search(config, out=out, trainable=known_curves)
    study = optuna.load_study(study_name=result.study_name, storage=result.storage_url)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == TRIALS
    curves = [curve(t.user_attrs["arch"]) for t in trials]
    stops = expected_stops(curves)
    assert any(stops) and None in stops  # the test means something: both outcomes occur
    for trial, accuracies, stop in zip(trials, curves, stops, strict=True):
        if stop is None:
            assert trial.state == TrialState.COMPLETE
            assert trial.values[0] == pytest.approx(accuracies[-1])  # full fidelity
            assert trial.user_attrs["val_accuracy_per_epoch"] == pytest.approx(accuracies)
            assert PRUNED_EPOCH not in trial.user_attrs
        else:
            assert trial.state == TrialState.PRUNED and trial.values is None
            assert trial.user_attrs[PRUNED_EPOCH] == stop
            assert trial.user_attrs[PRUNED_RUNG] == RUNGS.index(stop)
            assert trial.user_attrs[PARTIAL_ACCURACY] == pytest.approx(accuracies[stop - 1])
            assert trial.user_attrs["val_accuracy_per_epoch"] == pytest.approx(
                accuracies[:stop])
    pruned = sum(stop is not None for stop in stops)
    text = out.getvalue()
    assert "scheduler mo-asha (rungs at epoch 1, 2, eta 2)" in text
    assert f"[{TRIALS}/{TRIALS}] trials done (0 failed, {pruned} pruned)" in text
    assert "started (1 running)" in text and "epoch 1/4: val_acc" in text

    # A resume with a larger budget rebuilds the rungs from the study: the newcomers are
    # ranked against every earlier trial, exactly as if the search had never stopped.
    more = replace(config, trials=TRIALS + 4)
    out = io.StringIO()
    run_search(more, out=out, trainable=known_curves)
    assert f"mo-asha: rungs rebuilt from {TRIALS} earlier trial(s)" in out.getvalue()
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == TRIALS + 4
    curves = [curve(t.user_attrs["arch"]) for t in trials]
    states = [t.state == TrialState.PRUNED for t in trials]
    assert states == [stop is not None for stop in expected_stops(curves)]
