"""A study written by the search, as tables: what reports, exports and figures read.

The study's layout is fixed (README, "What a study holds"): metric names from
:data:`search.study.objectives.OBJECTIVES`, study and trial user attrs from
:mod:`search.study.schema`. Optuna refuses new attributes on a finished trial, so what
an export adds (test accuracy, where it went) is kept as a study user attr
``export:<trial number>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.study.objectives import (
    ACCURACY,
    MACS,
    PARAMS,
    REFERENCE_PRESET,
    Objective,
    hypervolume_space,
    objectives_from_metrics,
    preset_costs,
    reference_costs,
)
from search.study.pareto import (
    hypervolume,
    hypervolume_contributions,
    hypervolume_history,
    pareto_mask,
    to_minimisation,
)
from search.study.schema import (
    ARCH,
    ARCH_STR,
    BUDGET,
    CACHED_FROM,
    CLASS_NAMES,
    DATA_SOURCE,
    DATASET,
    DEVICE,
    EXPORT_DIR,
    FAIL_REASON,
    INPUT_SHAPE,
    LATENCY_TARGET,
    NODE_ID,
    NODE_IP,
    NUM_CLASSES,
    OVER_MAX_PARAMS,
    PARTIAL_ACCURACY,
    PRESET,
    PRUNED_EPOCH,
    PRUNED_RUNG,
    SCHEDULER,
    SEED,
    TEST_ACCURACY,
    TRAIN_CONFIG,
    TRAIN_SECONDS,
    VAL_ACCURACY_PER_EPOCH,
    WALL_SECONDS,
    export_attr,
)
from search.study.storage import StudyError
from space import Arch, InputShape, network_key

__all__ = [
    "StudyInfo",
    "StudyResults",
    "load_results",
    "read_study_info",
    "trials_table",
]

_STAGE_FIELDS = ("op", "c", "n")  # per-stage columns of the trials table


@dataclass(frozen=True)
class StudyInfo:
    """What the search recorded about a study as a whole."""

    name: str
    dataset: str
    shape: InputShape
    objectives: tuple[Objective, ...]
    train_config: dict[str, Any]
    class_names: tuple[str, ...] | None = None  # output index -> class, where known
    scheduler: dict[str, Any] | None = None  # e.g. {"name": "mo-asha", "rungs": [1, 3]}
    data_source: dict[str, Any] | None = None  # an image folder's, as the search recorded it
    budget: str | None = None  # the --budget preset the search started from

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.objectives)


def read_study_info(study: optuna.Study) -> StudyInfo:
    """The study's own attributes, checked; :class:`StudyError` if they are not the search's."""
    attrs = study.user_attrs
    missing = [k for k in (DATASET, INPUT_SHAPE, NUM_CLASSES) if k not in attrs]
    if missing:
        raise StudyError(f"study {study.study_name!r} lacks user attr(s) {', '.join(missing)}; "
                         "was it written by python -m search.run?")
    shape = attrs[INPUT_SHAPE]
    if not isinstance(shape, list) or len(shape) != 3 or shape[1] != shape[2]:
        raise StudyError(f"study {study.study_name!r}: {INPUT_SHAPE} must be [C, H, H], "
                         f"got {shape!r}")
    try:
        objectives = objectives_from_metrics(study.metric_names or (), study.directions,
                                             latency_target=attrs.get(LATENCY_TARGET))
        input_shape = InputShape(shape[0], shape[1], attrs[NUM_CLASSES])
    except ValueError as err:
        raise StudyError(f"study {study.study_name!r}: {err}") from None
    return StudyInfo(
        name=study.study_name,
        dataset=str(attrs[DATASET]),
        shape=input_shape,
        objectives=objectives,
        train_config=dict(attrs.get(TRAIN_CONFIG, {})),
        class_names=tuple(attrs[CLASS_NAMES]) if attrs.get(CLASS_NAMES) else None,
        scheduler=dict(attrs[SCHEDULER]) if isinstance(attrs.get(SCHEDULER), dict) else None,
        data_source=(dict(attrs[DATA_SOURCE]) if isinstance(attrs.get(DATA_SOURCE), dict)
                     else None),
        budget=str(attrs[BUDGET]) if attrs.get(BUDGET) is not None else None,
    )


@dataclass(frozen=True)
class StudyResults:
    """A study as tables: ``trials`` has one row per trial, indexed by trial number.

    Columns: number, state, arch (string form), preset, stage<i>_op / _c / _n, stem, head,
    every objective's metric and every always-measured cost (params, macs), epochs (epochs
    trained, where recorded), pruned_epoch, rung and partial_val_accuracy (for a trial the
    scheduler stopped early, state PRUNED: the epochs it trained, the 0-based rung it was
    stopped at and its validation accuracy then, not a final one), test_accuracy,
    export_dir, train_seconds, wall_seconds, device, node_ip and node_id (the Ray node that
    trained it), seed, cached_from (for a duplicate
    served from the cache, the trial that was trained), over_max_params (for a proposal
    over ``--max-params``, PRUNED untrained: that cap), fail_reason, and for complete
    trials on_front and hv_contribution (the hypervolume lost without the trial's point and
    its equal copies, e.g. cached duplicates). A column that shows a user attr is named by the
    attr's key (:mod:`search.study.schema`), but for rung (``pruned_rung``); the
    objectives' columns by their metric names. A pruned trial has no val_accuracy and is
    never on the front nor in the hypervolume. ``hypervolume_history`` follows the
    complete trials in number order.
    """

    info: StudyInfo
    trials: pd.DataFrame
    archs: dict[int, Arch]
    presets: pd.DataFrame  # costs of every preset on the study's input
    reference: np.ndarray  # in hypervolume space
    hypervolume: float
    hypervolume_history: pd.Series

    @property
    def complete(self) -> pd.DataFrame:
        return self.trials[self.trials["state"] == "COMPLETE"]

    @property
    def pruned(self) -> pd.DataFrame:
        """Trials the scheduler stopped early."""
        return self.trials[(self.trials["state"] == "PRUNED")
                           & self.trials[OVER_MAX_PARAMS].isna()]

    @property
    def oversized(self) -> pd.DataFrame:
        """Proposals over ``--max-params``: PRUNED before any training."""
        return self.trials[self.trials[OVER_MAX_PARAMS].notna()]

    @property
    def front(self) -> pd.DataFrame:
        complete = self.complete
        return complete[complete["on_front"]]

    def distinct_networks(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` (of :attr:`trials`) less each row whose network an earlier one builds
        (:func:`space.network_key` on the study's input): a cached duplicate, or another
        architecture string of the same network. A row without an architecture stays."""
        keys = [network_key(self.archs[n], self.info.shape.input_size) if n in self.archs
                else ("no architecture", n) for n in rows["number"]]
        return rows[~pd.Series(keys, index=rows.index).duplicated().to_numpy()]

    @property
    def stages(self) -> int:
        """How many stages the architectures have (columns ``stage1_op``...)."""
        return sum(column.endswith("_op") for column in self.trials.columns)

    def front_against(self, metric: str) -> pd.DataFrame:
        """Complete trials that no other beats in both accuracy and ``metric`` (a cost): the
        two-objective front drawn against that cost, whatever else the study minimises."""
        complete = self.complete.dropna(subset=[metric])
        values = complete[[ACCURACY.metric, metric]].to_numpy(dtype=float)
        mask = pareto_mask(to_minimisation(values, [ACCURACY.direction,
                                                    StudyDirection.MINIMIZE]))
        return complete[mask]

    def reference_text(self) -> str:
        values = reference_costs(self.presets, self.info.objectives)
        counts = ", ".join(f"{metric} {value:,.0f}" if value >= 1000 else f"{metric} {value:.4g}"
                           for metric, value in values.items())
        return f"accuracy 0; {counts} ({REFERENCE_PRESET} on this input), log10 scale"


def _parse_arch(text: Any) -> Arch | None:
    try:
        return Arch.from_json(text) if isinstance(text, str) else None
    except ValueError:
        return None  # shown as a trial without an architecture rather than failing a report


def _trial_row(trial: FrozenTrial, info: StudyInfo, arch: Arch | None,
               export: dict[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    values = dict(zip(info.metric_names, trial.values or (), strict=False))
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        ARCH: str(arch) if arch else attrs.get(ARCH_STR, ""),
        PRESET: attrs.get(PRESET, ""),
    }
    if arch is not None:
        row.update({f"stage{i}_{field}": getattr(stage, field)
                    for i, stage in enumerate(arch.stages, start=1) for field in _STAGE_FIELDS})
        row.update(stem=arch.stem, head=arch.head)
    # Accuracy comes from the trial's values only: a partial accuracy kept as an attribute
    # must never pass for a final one.
    row.update({metric: values.get(metric) if metric == ACCURACY.metric
                else attrs.get(metric, values.get(metric))
                for metric in (PARAMS.metric, MACS.metric, *info.metric_names)})
    per_epoch = attrs.get(VAL_ACCURACY_PER_EPOCH)
    pruned = trial.state == TrialState.PRUNED
    row.update({
        "epochs": len(per_epoch) if isinstance(per_epoch, list) else None,
        PRUNED_EPOCH: attrs.get(PRUNED_EPOCH) if pruned else None,
        "rung": attrs.get(PRUNED_RUNG) if pruned else None,
        PARTIAL_ACCURACY: attrs.get(PARTIAL_ACCURACY) if pruned else None,
    })
    row.update({
        TEST_ACCURACY: export.get(TEST_ACCURACY),
        EXPORT_DIR: export.get(EXPORT_DIR, ""),
        TRAIN_SECONDS: attrs.get(TRAIN_SECONDS),
        WALL_SECONDS: attrs.get(WALL_SECONDS),
        DEVICE: attrs.get(DEVICE, ""),
        NODE_IP: attrs.get(NODE_IP, ""),
        NODE_ID: attrs.get(NODE_ID, ""),
        SEED: attrs.get(SEED),
        CACHED_FROM: attrs.get(CACHED_FROM),
        OVER_MAX_PARAMS: attrs.get(OVER_MAX_PARAMS),
        FAIL_REASON: attrs.get(FAIL_REASON, ""),
    })
    return row


def _trials_frame(trials: list[FrozenTrial], info: StudyInfo, archs: dict[int, Arch],
                  exports: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame([
        _trial_row(t, info, archs.get(t.number), exports.get(export_attr(t.number), {}))
        for t in trials
    ]).set_index("number", drop=False).sort_index().rename_axis(index=None)
    frame = frame.reindex(columns=[*frame.columns.drop(["stem", "head"], errors="ignore"),
                                   "stem", "head"])
    # None (absent) becomes a missing value, so counts stay integers and blanks in the CSV.
    counts = [SEED, CACHED_FROM, OVER_MAX_PARAMS, "stem", "head", "epochs", PRUNED_EPOCH, "rung",
              *(c for c in frame.columns if c.startswith("stage") and not c.endswith("_op"))]
    for column in (c for c in counts if c in frame.columns):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in {PARAMS.metric, MACS.metric, *info.metric_names, TEST_ACCURACY,
                   TRAIN_SECONDS, WALL_SECONDS, PARTIAL_ACCURACY}:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    for column in (PARAMS.metric, MACS.metric):
        if frame[column].dropna().apply(float.is_integer).all():
            frame[column] = frame[column].astype("Int64")
    return frame


def _read(study: optuna.Study) -> tuple[StudyInfo, list[FrozenTrial], dict[int, Arch],
                                        pd.DataFrame]:
    info = read_study_info(study)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise StudyError(f"study {info.name!r} has no trials")
    archs = {t.number: a for t in trials if (a := _parse_arch(t.user_attrs.get(ARCH)))}
    return info, trials, archs, _trials_frame(trials, info, archs, study.user_attrs)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """The trials table of :func:`load_results` less the front's columns (``on_front``,
    ``hv_contribution``), which need every preset built: cheap enough for the end of a
    search. :class:`StudyError` when the study has no trials or is not the search's."""
    return _read(study)[3]


def load_results(study: optuna.Study) -> StudyResults:
    """Everything a report or an export needs; :class:`StudyError` when there is nothing."""
    info, trials, archs, frame = _read(study)
    for column in (PARAMS.metric, MACS.metric):  # attributes: they may say what values do not
        infinite = frame[np.isinf(frame[column].astype(float))]
        if len(infinite):
            row = infinite.iloc[0]
            raise StudyError(f"study {info.name!r}: trial {row['number']} has {column} "
                             f"{row[column]}, not a count (a non-finite attribute)")
    complete = [t for t in sorted(trials, key=lambda t: t.number)
                if t.state == TrialState.COMPLETE]
    if not complete:
        counts = frame["state"].value_counts()
        raise StudyError(f"study {info.name!r} has no complete trial ("
                         + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) + ")")
    values = np.array([t.values for t in complete], dtype=float)
    if not np.isfinite(values).all() or (values[:, 1:] <= 0).any():
        raise StudyError(f"study {info.name!r}: a complete trial has a non-finite or "
                         "non-positive objective value")
    numbers = [t.number for t in complete]
    presets = preset_costs(info.shape, info.objectives)
    points, reference = hypervolume_space(values, info.objectives,
                                          reference_costs(presets, info.objectives))
    frame["on_front"] = False
    frame.loc[numbers, "on_front"] = pareto_mask(
        to_minimisation(values, [o.direction for o in info.objectives]))
    # Per distinct point, so that a network trained once and served again from the cache
    # keeps its contribution instead of sharing 0 with its copies.
    distinct, copies = np.unique(points, axis=0, return_inverse=True)
    frame.loc[numbers, "hv_contribution"] = hypervolume_contributions(
        distinct, reference)[copies.ravel()]
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

