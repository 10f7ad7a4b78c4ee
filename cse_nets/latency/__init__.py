"""Latency: the measurement protocol (:mod:`~cse_nets.latency.timing`), the targets and how
a network is timed on each (:mod:`~cse_nets.latency.measure`), int8 quantisation
(:mod:`~cse_nets.latency.quantize`), the per-block table that predicts a network's latency
(:mod:`~cse_nets.latency.table`) and its correction fitted on whole networks
(:mod:`~cse_nets.latency.correction`), and the command line (:mod:`~cse_nets.latency.cli`,
run as ``python -m cse_nets.latency``).

Imports ``space`` and the rest of ``cse_nets``. This front re-exports what the search uses.
"""

from cse_nets.latency.correction import (
    CorrectedPrediction,
    Correction,
    correction_for,
    predict_corrected,
)
from cse_nets.latency.measure import (
    DEFAULT_TARGET,
    INT8_TARGET,
    TARGETS,
    check_target,
    measure_network,
    measure_onnx,
)
from cse_nets.latency.table import (
    LatencyTable,
    OpComparison,
    Prediction,
    compare_ops,
    predict_latency,
)
from cse_nets.latency.timing import Protocol, Timing

__all__ = [
    "DEFAULT_TARGET",
    "INT8_TARGET",
    "TARGETS",
    "CorrectedPrediction",
    "Correction",
    "LatencyTable",
    "OpComparison",
    "Prediction",
    "Protocol",
    "Timing",
    "check_target",
    "compare_ops",
    "correction_for",
    "measure_network",
    "measure_onnx",
    "predict_corrected",
    "predict_latency",
]
