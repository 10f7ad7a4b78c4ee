"""Hand-made Optuna studies laid out as the search writes them, for report/export tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from space import PRESETS, Arch

MIX = PRESETS["paper-mix"]
SMALL = Arch(stages=tuple(replace(s, c=max(8, s.c // 2)) for s in MIX.stages), stem=16,
             head=640, head_op="grouped", act="prelu")
SMALLER = Arch(stages=tuple(replace(s, op="cse") for s in SMALL.stages), stem=16, head=640,
               head_op="grouped", act="prelu")


@dataclass(frozen=True)
class Row:
    """One trial of a hand-made study: what the search would have recorded."""

    arch: Arch
    accuracy: float | None  # None: a failed trial
    params: int
    macs: int = 1_000_000
    preset: str | None = None
    pruned_epoch: int | None = None  # a pruned trial: the epochs it trained before it stopped
    rung: int = 0  # a pruned trial's rung; its ``accuracy`` is then the partial one

    @property
    def latency_ms(self) -> float:
        return self.macs / 2e7  # any positive value; only the layout matters here

    @property
    def per_epoch(self) -> list[float]:
        """Validation accuracy per epoch trained, rising to ``accuracy``."""
        epochs = self.pruned_epoch or 1
        return [(self.accuracy or 0.0) * (i + 1) / epochs for i in range(epochs)]


ROWS = (
    Row(PRESETS["mobilenetv2"], 0.80, 2_296_922, 88_000_000, "mobilenetv2"),
    Row(MIX, 0.78, 362_994, 81_000_000, "paper-mix"),
    Row(PRESETS["cse-only"], 0.70, 412_030, 70_000_000, "cse-only"),
    Row(SMALL, 0.74, 100_000, 20_000_000),
    Row(SMALLER, 0.60, 150_000, 30_000_000),  # dominated by SMALL
    Row(SMALL, None, 100_000),
)


def make_study(storage: str, name: str = "demo", rows: tuple[Row, ...] = ROWS, *,
               dataset: str = "cifar10", input_shape: tuple[int, int, int] = (3, 32, 32),
               num_classes: int = 10, metrics: tuple[str, ...] = ("val_accuracy", "params"),
               train_config: dict | None = None,
               scheduler: dict | None = None) -> optuna.Study:
    """A study with the directions, metric names and attributes the search records
    (``scheduler`` too when given; studies from before schedulers lack it)."""
    study = optuna.create_study(study_name=name, storage=storage,
                                directions=["maximize"] + ["minimize"] * (len(metrics) - 1))
    study.set_metric_names(list(metrics))
    attrs = {"dataset": dataset, "input_shape": list(input_shape), "num_classes": num_classes,
             "objectives": ["accuracy", *metrics[1:]], "train_config": train_config or {},
             "budget": "test",
             "latency_target": "cpu-onnxruntime" if "latency_ms" in metrics else None,
             **({"scheduler": scheduler} if scheduler else {})}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for row in rows:
        user_attrs = {"arch": row.arch.to_json(indent=None), "arch_str": str(row.arch),
                      "params": row.params, "macs": row.macs, "device": "cpu", "seed": 0,
                      "train_seconds": 1.5, "wall_seconds": 2.0, "latency_ms": row.latency_ms,
                      "val_accuracy_per_epoch": row.per_epoch}
        if row.preset:
            user_attrs["preset"] = row.preset
        if row.pruned_epoch is not None:
            user_attrs.update(pruned_epoch=row.pruned_epoch, pruned_rung=row.rung,
                              partial_val_accuracy=row.accuracy)
            trial = create_trial(state=TrialState.PRUNED, user_attrs=user_attrs)
        elif row.accuracy is None:
            user_attrs["fail_reason"] = "NonFiniteLossError: loss became nan"
            trial = create_trial(state=TrialState.FAIL, user_attrs=user_attrs)
        else:
            counts = {"params": row.params, "macs": row.macs, "latency_ms": row.latency_ms}
            values = [row.accuracy, *(counts[m] for m in metrics[1:])]
            trial = create_trial(values=values, user_attrs=user_attrs)
        study.add_trial(trial)
    return study


def bad_argv(tmp_path: Path, storage: str, case: str) -> list[str]:
    """Arguments for one of :data:`BAD_CASES`, with whatever it needs set up."""
    results = str(tmp_path / "res")
    if case == "unknown study":
        make_study(storage, name="other")
        return ["--study", "demo", "--storage", storage, "--results-dir", results]
    if case == "empty study":
        make_study(storage, rows=())
    if case == "no complete trial":
        make_study(storage, rows=(ROWS[-1],))
    if case == "unwritable results dir":
        make_study(storage)
        Path(results).write_text("a file, not a directory")
    if case == "malformed storage URL":
        storage = "sqlite//no-colon"
    if case == "missing database":
        storage = f"sqlite:///{tmp_path / 'nothing.db'}"
    return ["--study", "demo", "--storage", storage, "--results-dir", results]


BAD_CASES = [
    ("unknown study", "no study named 'demo'"),
    ("empty study", "has no trials"),
    ("no complete trial", "has no complete trial (1 fail)"),
    ("unwritable results dir", "cannot create results directory"),
    ("malformed storage URL", "malformed storage URL"),
    ("missing database", "no study database"),
]
