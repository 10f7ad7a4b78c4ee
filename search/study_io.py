"""From an Optuna study written by the search to plain tables and arrays.

The study's layout is fixed (README, "What a study holds"): metric names
``val_accuracy``, ``params`` and optionally ``macs``; study user attrs ``dataset``,
``input_shape``, ``num_classes``, ``train_config``; trial user attrs ``arch``, ``params``,
``macs``, ``preset``, ``fail_reason``, ... Optuna refuses new attributes on a finished
trial, so what an export adds (test accuracy, where it went) is kept as a study user attr
``export:<trial number>``.

Hypervolume convention (:func:`hypervolume_space`): accuracy is a fraction with reference
0; every count (parameters, MACs) is measured in decades *below* the MobileNetV2 baseline
built for the study's input shape and classes, i.e. as ``log10(count)`` with reference
``log10(baseline count)``. So with two objectives the hypervolume reads as "accuracy x
decades of parameter savings over MobileNetV2", and a model larger than the baseline adds
nothing, whatever its accuracy.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from cse_nets import build_network, count_macs, count_parameters
from cse_nets.cli import first_line
from search.pareto import (
    hypervolume,
    hypervolume_contributions,
    hypervolume_history,
    pareto_mask,
    to_minimisation,
)
from space import PRESETS, Arch, InputShape

__all__ = [
    "ACCURACY",
    "DEFAULT_RESULTS_DIR",
    "EXPORT_ATTR_PREFIX",
    "REFERENCE_PRESET",
    "StudyError",
    "StudyInfo",
    "StudyResults",
    "add_study_arguments",
    "default_storage",
    "export_attr",
    "hypervolume_space",
    "load_results",
    "open_study",
    "open_study_from_args",
    "output_dir",
    "preset_costs",
    "writing_to_storage",
]

DEFAULT_RESULTS_DIR = Path("results")
ACCURACY = "val_accuracy"
REFERENCE_PRESET = "mobilenetv2"
EXPORT_ATTR_PREFIX = "export:"
_DIRECTIONS = {ACCURACY: "maximize", "params": "minimize", "macs": "minimize"}


class StudyError(ValueError):
    """A study that cannot be read or reported; the message is one line."""


def default_storage(results_dir: Path, study: str) -> str:
    """Where the search keeps a study unless told otherwise: one SQLite file per study."""
    return f"sqlite:///{results_dir / study}.db"


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``--study``, ``--storage`` and ``--results-dir``, with the search's defaults."""
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--storage", help="Optuna storage URL "
                        "(default: sqlite:///<results-dir>/<study>.db)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR,
                        help="where results go (default: %(default)s)")


def open_study(name: str, storage: str) -> optuna.Study:
    """Load an existing study; :class:`StudyError` if the URL or the study is not there."""
    try:
        url = make_url(storage)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StudyError(f"malformed storage URL {storage!r}") from None
    # Optuna would create a missing SQLite file (and its tables) just to find it empty.
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise StudyError(f"no study database at {url.database or storage!r}")
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = _study_names(storage)
        raise StudyError(f"no study named {name!r} in {storage}"
                         + (f" (it has: {', '.join(known)})" if known else "")) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
        raise StudyError(f"cannot open storage {storage}: {first_line(err)}") from None


def _study_names(storage: str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


@contextmanager
def writing_to_storage(what: str) -> Iterator[None]:
    """Database errors while writing into a study (a locked SQLite file, a read-only
    server) become a one-line :class:`StudyError` naming ``what`` was being saved."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as err:
        raise StudyError(f"cannot save {what} into the study: {first_line(err)}") from None


def open_study_from_args(args: argparse.Namespace) -> optuna.Study:
    return open_study(args.study, args.storage or default_storage(args.results_dir, args.study))


def output_dir(results_dir: Path, study: str, *parts: str) -> Path:
    """``<results-dir>/<study>/<parts...>``, created; :class:`StudyError` if it cannot be."""
    path = results_dir.joinpath(study, *parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"cannot create results directory {path}: {err.strerror}") from None
    return path


def export_attr(number: int) -> str:
    """The study user attr that records the export of trial ``number``."""
    return f"{EXPORT_ATTR_PREFIX}{number}"


@dataclass(frozen=True)
class StudyInfo:
    """What the search recorded about a study as a whole."""

    name: str
    dataset: str
    shape: InputShape
    metric_names: tuple[str, ...]
    directions: tuple[str, ...]
    train_config: dict[str, Any]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.shape.in_channels, self.shape.input_size, self.shape.input_size)


def _study_info(study: optuna.Study) -> StudyInfo:
    attrs = study.user_attrs
    missing = [k for k in ("dataset", "input_shape", "num_classes") if k not in attrs]
    if missing:
        raise StudyError(f"study {study.study_name!r} lacks user attr(s) {', '.join(missing)}; "
                         "was it written by python -m search.run?")
    shape = attrs["input_shape"]
    if (not isinstance(shape, list) or len(shape) != 3 or shape[1] != shape[2]
            or not all(isinstance(v, int) and v > 0 for v in shape)):
        raise StudyError(f"study {study.study_name!r}: input_shape must be [C, H, H], "
                         f"got {shape!r}")
    names = tuple(study.metric_names or ())
    directions = tuple(d.name.lower() for d in study.directions)
    expected = tuple(_DIRECTIONS.get(n) for n in names)
    if not names or names[0] != ACCURACY or expected != directions:
        raise StudyError(f"study {study.study_name!r}: objectives {list(names)} / {directions} "
                         f"are not val_accuracy (maximize) then params/macs (minimize)")
    return StudyInfo(
        name=study.study_name,
        dataset=str(attrs["dataset"]),
        shape=InputShape(shape[0], shape[1], int(attrs["num_classes"])),
        metric_names=names,
        directions=directions,
        train_config=dict(attrs.get("train_config", {})),
    )


def preset_costs(info: StudyInfo) -> pd.DataFrame:
    """Parameters (and MACs when a study minimises them) of every preset on this input."""
    rows = []
    for name, arch in PRESETS.items():
        network = build_network(arch, info.shape)
        row = {"preset": name, "params": count_parameters(network)}
        if "macs" in info.metric_names:
            row["macs"] = count_macs(network, info.input_shape)
        rows.append(row)
    return pd.DataFrame(rows).set_index("preset")


def hypervolume_space(values: np.ndarray, metric_names: tuple[str, ...],
                      reference_counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Points and reference, minimised, in which hypervolume is measured (module docstring).

    ``values`` are raw objective values in ``metric_names`` order (accuracy first);
    ``reference_counts`` gives the baseline's count per count metric.
    """
    columns, reference = [], []
    for j, name in enumerate(metric_names):
        if name == ACCURACY:
            columns.append(values[:, j])
            reference.append(0.0)
        else:
            columns.append(np.log10(values[:, j]))
            reference.append(float(np.log10(reference_counts[name])))
    directions = [_DIRECTIONS[n] for n in metric_names]
    points = np.column_stack(columns) if columns else np.empty((0, 0))
    return to_minimisation(points, directions), to_minimisation(reference, directions)


@dataclass(frozen=True)
class StudyResults:
    """A study as tables: ``trials`` has one row per trial, indexed by trial number.

    Columns: state, arch (string form), preset, stage<i>_op, params, macs, val_accuracy,
    test_accuracy, export_dir, train_seconds, wall_seconds, device, seed, fail_reason, and
    for complete trials on_front and hv_contribution. ``hypervolume_history`` follows the
    complete trials in number order.
    """

    info: StudyInfo
    trials: pd.DataFrame
    archs: dict[int, Arch]
    presets: pd.DataFrame
    reference: np.ndarray  # in hypervolume space
    hypervolume: float
    hypervolume_history: pd.Series

    @property
    def complete(self) -> pd.DataFrame:
        return self.trials[self.trials["state"] == "COMPLETE"]

    @property
    def front(self) -> pd.DataFrame:
        complete = self.complete
        return complete[complete["on_front"]]

    def reference_text(self) -> str:
        counts = ", ".join(f"{name} {self.presets.loc[REFERENCE_PRESET, name]:,}"
                           for name in self.info.metric_names if name != ACCURACY)
        return f"accuracy 0; {counts} ({REFERENCE_PRESET} on this input), log10 scale"


def _parse_arch(text: Any) -> Arch | None:
    try:
        return Arch.from_json(text) if isinstance(text, str) else None
    except ValueError:
        return None  # shown as a trial without an architecture rather than failing a report


def _trial_row(trial: optuna.trial.FrozenTrial, info: StudyInfo, arch: Arch | None,
               export: dict[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    values = dict(zip(info.metric_names, trial.values or (), strict=False))
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "arch": str(arch) if arch else attrs.get("arch_str", ""),
        "preset": attrs.get("preset", ""),
    }
    if arch is not None:
        row.update({f"stage{i + 1}_op": s.op for i, s in enumerate(arch.stages)})
    row.update({
        "params": attrs.get("params", values.get("params")),
        "macs": attrs.get("macs", values.get("macs")),
        ACCURACY: values.get(ACCURACY),
        "test_accuracy": export.get("test_accuracy"),
        "export_dir": export.get("export_dir", ""),
        "train_seconds": attrs.get("train_seconds"),
        "wall_seconds": attrs.get("wall_seconds"),
        "device": attrs.get("device", ""),
        "seed": attrs.get("seed"),
        "fail_reason": attrs.get("fail_reason", ""),
    })
    return row


def load_results(study: optuna.Study) -> StudyResults:
    """Everything a report or an export needs; :class:`StudyError` when there is nothing."""
    info = _study_info(study)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise StudyError(f"study {info.name!r} has no trials")
    archs = {t.number: a for t in trials if (a := _parse_arch(t.user_attrs.get("arch")))}
    exports = study.user_attrs
    frame = pd.DataFrame([
        _trial_row(t, info, archs.get(t.number), exports.get(export_attr(t.number), {}))
        for t in trials
    ]).set_index("number", drop=False).sort_index().rename_axis(index=None)
    # None (absent) becomes a missing value, so counts stay integers and blanks in the CSV.
    for column in ("params", "macs", "seed"):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in (ACCURACY, "test_accuracy", "train_seconds", "wall_seconds"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    complete = frame["state"] == "COMPLETE"
    if not complete.any():
        counts = frame["state"].value_counts()
        raise StudyError(f"study {info.name!r} has no complete trial ("
                         + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) + ")")

    values = np.array([t.values for t in trials if t.state.name == "COMPLETE"], dtype=float)
    numbers = [t.number for t in trials if t.state.name == "COMPLETE"]
    order = np.argsort(numbers)
    values, numbers = values[order], list(np.asarray(numbers)[order])
    presets = preset_costs(info)
    points, reference = hypervolume_space(
        values, info.metric_names,
        {name: int(presets.loc[REFERENCE_PRESET, name]) for name in info.metric_names
         if name != ACCURACY},
    )
    frame["on_front"] = False
    frame.loc[numbers, "on_front"] = pareto_mask(to_minimisation(values, info.directions))
    frame.loc[numbers, "hv_contribution"] = hypervolume_contributions(points, reference)
    return StudyResults(
        info=info,
        trials=frame,
        archs=archs,
        presets=presets,
        reference=reference,
        hypervolume=hypervolume(points, reference),
        hypervolume_history=pd.Series(hypervolume_history(points, reference), index=numbers,
                                      name="hypervolume"),
    )

