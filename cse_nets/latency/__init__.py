"""Latency: the measurement protocol (:mod:`~cse_nets.latency.timing`), the targets and how
a network is timed on each (:mod:`~cse_nets.latency.measure`), the per-block table that
predicts a network's latency (:mod:`~cse_nets.latency.table`), and the command line
(:mod:`~cse_nets.latency.cli`, run as ``python -m cse_nets.latency``).

Imports ``space`` and the rest of ``cse_nets``. This front re-exports what the search uses.
"""

from cse_nets.latency.measure import (
    DEFAULT_TARGET,
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
    "TARGETS",
    "LatencyTable",
    "OpComparison",
    "Prediction",
    "Protocol",
    "Timing",
    "check_target",
    "compare_ops",
    "measure_network",
    "measure_onnx",
    "predict_latency",
]
