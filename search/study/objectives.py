"""The search's objectives, one row each; every other module reads this table.

A row says what an objective is called on the command line, which metric name the study
and the trial attributes give it, its direction, its unit, how it is computed and how the
hypervolume scales it. Adding an objective is one row plus its measurement.

Hypervolume convention (:func:`hypervolume_space`): accuracy is a fraction with reference
0; every count (parameters, MACs) is measured in decades *below* the MobileNetV2 baseline
built for the study's input shape and classes, i.e. as ``log10(count)`` with reference
``log10(baseline count)``. So with two objectives the hypervolume reads as "accuracy x
decades of parameter savings over MobileNetV2", and a model larger than the baseline adds
nothing, whatever its accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from optuna.study import StudyDirection
from torch import nn

from cse_nets import build_network, count_macs, count_parameters
from cse_nets.latency import LatencyTable, correction_for, predict_corrected
from cse_nets.latency.measure import DEFAULT_TARGET, check_target
from search.study.pareto import to_minimisation
from space import PRESETS, Arch, InputShape

__all__ = [
    "ACCURACY",
    "ALWAYS_MEASURED",
    "MACS",
    "OBJECTIVES",
    "PARAMS",
    "REFERENCE_PRESET",
    "Objective",
    "fit_latency_corrections",
    "hypervolume_space",
    "measure_costs",
    "objectives_from_metrics",
    "objectives_from_names",
    "preset_costs",
    "reference_costs",
]

# The preset whose costs set the hypervolume reference point.
REFERENCE_PRESET = "mobilenetv2"

# (architecture, its network, input shape, objective's target) -> value
Measure = Callable[[Arch, nn.Module, InputShape, "str | None"], float]


@dataclass(frozen=True)
class Objective:
    """One objective of the search."""

    name: str  # on the command line (``--objectives accuracy,params``)
    metric: str  # the study's metric name, the trial user attr and the results column
    direction: StudyDirection
    unit: str  # for people: axis titles, help texts
    log_scale: bool  # hypervolume in log10 decades below the baseline (else linear from 0)
    measure: Measure | None  # the cost of a built network; None: found by training
    target: str | None = None  # the device a measured cost is for (latency only)

    @property
    def ray_mode(self) -> str:
        """Ray Tune's spelling of the direction."""
        return "max" if self.direction == StudyDirection.MAXIMIZE else "min"

    def on(self, target: str | None) -> Objective:
        """This objective measured on ``target`` (only objectives that have one)."""
        if self.target is None or target is None:
            return self
        return replace(self, target=check_target(target))


def _predicted_latency_ms(arch: Arch, network: nn.Module, shape: InputShape,
                          target: str | None) -> float:
    # From the per-block table (cse_nets.latency.table) and its whole-network correction
    # (cse_nets.latency.correction): noise-free once the entries and the correction exist,
    # and both are measured once per machine, not once per trial.
    return predict_corrected(arch, shape, target or DEFAULT_TARGET).total_s * 1e3


ACCURACY = Objective("accuracy", "val_accuracy", StudyDirection.MAXIMIZE,
                     "validation accuracy (fraction)", log_scale=False, measure=None)
PARAMS = Objective("params", "params", StudyDirection.MINIMIZE, "trainable parameters",
                   log_scale=True, measure=lambda arch, net, shape, target: count_parameters(net))
MACS = Objective("macs", "macs", StudyDirection.MINIMIZE, "multiply-accumulates per image",
                 log_scale=True,
                 measure=lambda arch, net, shape, target: count_macs(net, shape.chw))
OBJECTIVES: dict[str, Objective] = {
    o.name: o for o in (
        ACCURACY,
        PARAMS,
        MACS,
        Objective("latency", "latency_ms", StudyDirection.MINIMIZE,
                  "predicted latency (ms, batch 1)", log_scale=True,
                  measure=_predicted_latency_ms, target=DEFAULT_TARGET),
    )
}
# Recorded for every trial whatever the objectives: the report's axes need them.
ALWAYS_MEASURED = (PARAMS, MACS)


def objectives_from_names(names: Iterable[str], *,
                          latency_target: str | None = None) -> tuple[Objective, ...]:
    """Validated objectives in table order: accuracy and at least one cost, no repeats;
    a latency objective is measured on ``latency_target`` (default: the row's)."""
    names = list(names)
    for name in names:
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names) or ACCURACY.name not in names or len(names) < 2:
        raise ValueError("objectives must be accuracy and one or more of "
                         f"{', '.join(n for n in OBJECTIVES if n != ACCURACY.name)}, without "
                         f"repeats, got {','.join(names)}")
    return tuple(o.on(latency_target) for o in OBJECTIVES.values() if o.name in names)


def objectives_from_metrics(metrics: Sequence[str], directions: Sequence[StudyDirection], *,
                            latency_target: str | None = None) -> tuple[Objective, ...]:
    """The objectives of a stored study, from its metric names and directions."""
    by_metric = {o.metric: o.on(latency_target) for o in OBJECTIVES.values()}
    found = tuple(by_metric.get(m) for m in metrics)
    if (None in found or not found or found[0].name != ACCURACY.name
            or [o.direction for o in found] != list(directions)):  # type: ignore[union-attr]
        raise ValueError(f"objectives {list(metrics)} / {[d.name for d in directions]} are "
                         f"not {ACCURACY.metric} (maximize) then costs from "
                         f"{', '.join(o.metric for o in ALWAYS_MEASURED)} (minimize)")
    return found  # type: ignore[return-value]


def measure_costs(arch: Arch, network: nn.Module, shape: InputShape,
                  objectives: Iterable[Objective] = ()) -> dict[str, float]:
    """Metric -> value of every cost in :data:`ALWAYS_MEASURED` and ``objectives``."""
    wanted = {o.metric: o for o in (*ALWAYS_MEASURED, *objectives) if o.measure is not None}
    return {metric: o.measure(arch, network, shape, o.target)  # type: ignore[misc]
            for metric, o in wanted.items()}


def fit_latency_corrections(objectives: Iterable[Objective], shape: InputShape,
                            progress: Callable[[str], None] | None = None) -> None:
    """Read or fit, in this process, the latency correction of every objective with a
    target, so that parallel trials read it rather than each fitting (and timing) its own
    while the others train."""
    for objective in objectives:
        if objective.target is not None:
            correction_for(LatencyTable(objective.target), shape, progress=progress)


def preset_costs(shape: InputShape, objectives: Iterable[Objective] = ()) -> pd.DataFrame:
    """Every preset's costs on ``shape``: one row per preset, one column per cost metric."""
    rows = {name: measure_costs(arch, build_network(arch, shape), shape, objectives)
            for name, arch in PRESETS.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("preset")


def reference_costs(presets: pd.DataFrame, objectives: Iterable[Objective]) -> dict[str, float]:
    """The baseline's value of every log-scaled objective, from :func:`preset_costs`."""
    return {o.metric: float(presets.loc[REFERENCE_PRESET, o.metric]) for o in objectives
            if o.log_scale}


def hypervolume_space(values: np.ndarray, objectives: Sequence[Objective],
                      reference_costs: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Points and reference, minimised, in which hypervolume is measured (module docstring).

    ``values`` are raw objective values in ``objectives`` order; ``reference_costs`` gives
    the baseline's value per log-scaled metric (:func:`reference_costs`).
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    columns, reference = [], []
    for j, objective in enumerate(objectives):
        if objective.log_scale:
            columns.append(np.log10(values[:, j]))
            reference.append(float(np.log10(reference_costs[objective.metric])))
        else:
            columns.append(values[:, j])
            reference.append(0.0)
    directions = [o.direction for o in objectives]
    return (to_minimisation(np.column_stack(columns), directions),
            to_minimisation(reference, directions))
