"""The live progress lines, driven as Tune drives its callbacks, on a clock the test sets."""

from __future__ import annotations

import io
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.driver import progress
from search.driver.progress import Progress
from search.study.schema import ARCH_KEY, EPOCH_KEY, NUMBER_KEY, PARTIAL_KEY
from space import preset

ARCH = preset("paper-mix")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return clock


def _tune_trial(trial_id: str, number: int) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id,
                           config={ARCH_KEY: ARCH.to_json(indent=None), NUMBER_KEY: number})


def _progress(total: int, epochs: int, interval: float
              ) -> tuple[optuna.Study, io.StringIO, Progress]:
    study = optuna.create_study(directions=["maximize", "minimize"])
    out = io.StringIO()
    return study, out, Progress(study, total=total, out=out, epochs=epochs, interval=interval)


def _epoch(epoch: int, accuracy: float) -> dict[str, object]:
    return {"val_accuracy": accuracy, "params": 1e5, EPOCH_KEY: epoch, PARTIAL_KEY: "{}"}


def test_starts_epochs_and_time_left(clock: Clock) -> None:
    _, out, live = _progress(total=4, epochs=3, interval=0)
    a, b = _tune_trial("a", 0), _tune_trial("b", 1)
    live.on_trial_start(0, [], a)
    live.on_trial_start(0, [], b)
    clock.now += 10
    live.on_trial_result(0, [], a, _epoch(1, 0.42))
    clock.now += 10
    live.on_trial_result(0, [], b, _epoch(1, 0.40))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"trial #0 started (1 running): {ARCH}"
    assert lines[1] == f"trial #1 started (2 running): {ARCH}"
    assert lines[2].startswith("  #0 epoch 1/3: val_acc 0.4200 | running #0 1/3, #1 0/3")
    # 2 epochs in 20 s; left: #0 and #1 2 epochs each, 2 trials not started 3 each = 10.
    assert lines[3] == ("  #1 epoch 1/3: val_acc 0.4000 | running #0 1/3, #1 1/3 | "
                        "about 1.7 min left")


def test_a_finished_trial_counts_and_expected_epochs_follow_the_pruned(clock: Clock) -> None:
    study, out, live = _progress(total=4, epochs=9, interval=3600)
    a = _tune_trial("a", 0)
    live.on_trial_start(0, [], a)
    clock.now += 5
    live.on_trial_result(0, [], a, _epoch(1, 0.3))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "val_accuracy_per_epoch": [0.3], "pruned_epoch": 1, "partial_val_accuracy": 0.3,
        "params": 123_456, "arch_str": str(ARCH)}))
    live.on_trial_complete(0, [], a)
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("[1/4] trials done (0 failed, 1 pruned), 0 duplicate(s)")
    assert f"last #0: pruned at epoch 1 (partial acc 0.3000), 123,456 params, {ARCH}" in line
    # The one trial so far trained 1 epoch: 3 more such trials at 1 epoch per 5 s.
    assert line.endswith("| about 15 s left")


def test_epoch_lines_are_at_most_one_per_interval(clock: Clock) -> None:
    _, out, live = _progress(total=2, epochs=9, interval=10)
    a = _tune_trial("a", 0)
    live.on_trial_start(0, [], a)
    for epoch in range(1, 6):
        clock.now += 4
        live.on_trial_result(0, [], a, _epoch(epoch, 0.1 * epoch))
    epochs = [line for line in out.getvalue().splitlines() if " epoch " in line]
    assert [line.split(":")[0] for line in epochs] == ["  #0 epoch 1/9", "  #0 epoch 4/9"]
