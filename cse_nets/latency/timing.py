"""The latency measurement protocol: pure statistics over a run function and a clock.

Protocol (the same for every target, a whole network or one block):

1. ``warmup`` runs are discarded (lazy allocation, kernel selection, caches); their
   durations only estimate how long one run takes.
2. Then ``rounds`` rounds of ``k`` runs each, ``k = max(runs, min_round_s / estimate)``
   (capped by ``max_runs``), so a 20 us block gets enough runs per round to outlast a
   scheduler tick while a 5 ms network is not run thousands of times.
3. The latency is the **median of the round medians**; the spread is the interquartile
   range of all timed runs; the fastest round's median is kept too.

Why this on a shared 2-core machine: another job's burst slows a whole round, and the
median over rounds discards it (a plain mean or one long run would absorb it); a
preemption inside a round slows single runs, and the round median discards those. The
minimum would be the most reproducible figure but tracks the best case, not what a
deployment sees; it is reported (``best_s``) so a reader can tell noise from cost. Noise
only ever adds time, so a large ``spread_s`` relative to ``median_s`` flags a
measurement to repeat.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Protocol", "Timing", "time_calls", "wall_timed"]


@dataclass(frozen=True)
class Protocol:
    """How many runs to discard and to time (see the module docstring)."""

    warmup: int = 10  # runs discarded before timing
    rounds: int = 5  # the latency is the median over these rounds' medians
    runs: int = 10  # at least this many timed runs per round
    min_round_s: float = 0.02  # seconds: fast calls get more runs, up to max_runs
    max_runs: int = 500  # at most this many runs per round

    def __post_init__(self) -> None:
        for name in ("warmup", "rounds", "runs", "max_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"protocol: {name} must be a positive integer, got {value!r}")
        if self.runs > self.max_runs:
            raise ValueError(f"protocol: runs ({self.runs}) exceeds max_runs ({self.max_runs})")
        if not (self.min_round_s >= 0 and math.isfinite(self.min_round_s)):
            raise ValueError(f"protocol: min_round_s must be >= 0, got {self.min_round_s!r}")

    def runs_per_round(self, estimate_s: float) -> int:
        """Runs per round for calls that take about ``estimate_s`` seconds each."""
        if estimate_s <= 0:
            return self.max_runs
        return max(self.runs, min(self.max_runs, math.ceil(self.min_round_s / estimate_s)))


@dataclass(frozen=True)
class Timing:
    """One measurement's result, in seconds."""

    median_s: float  # median of the round medians: the latency
    spread_s: float  # interquartile range of all timed runs
    best_s: float  # the fastest round's median
    runs: int  # timed runs in all (warm-up excluded)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Timing:
        """The inverse of :meth:`to_dict`; ``ValueError`` for anything else."""
        if not isinstance(data, dict) or set(data) != {"median_s", "spread_s", "best_s", "runs"}:
            raise ValueError(f"not a timing: {data!r}")
        timing = cls(float(data["median_s"]), float(data["spread_s"]), float(data["best_s"]),
                     int(data["runs"]))
        if not all(math.isfinite(v) and v >= 0 for v in (timing.median_s, timing.spread_s,
                                                         timing.best_s)):
            raise ValueError(f"not a timing: {data!r}")
        return timing


def wall_timed(run: Callable[[], object],
               clock: Callable[[], float] = time.perf_counter) -> Callable[[], float]:
    """``run`` as a function that runs it once and returns how long that took by ``clock``."""

    def timed() -> float:
        start = clock()
        run()
        return clock() - start

    return timed


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def time_calls(timed_run: Callable[[], float], protocol: Protocol | None = None) -> Timing:
    """Apply the protocol to ``timed_run`` (one run per call, returning its duration in
    seconds: :func:`wall_timed` for CPU targets, CUDA events for GPUs)."""
    protocol = protocol or Protocol()
    warm = [timed_run() for _ in range(protocol.warmup)]
    per_round = protocol.runs_per_round(statistics.median(warm))
    rounds = [[timed_run() for _ in range(per_round)] for _ in range(protocol.rounds)]
    medians = [statistics.median(durations) for durations in rounds]
    everything = [d for durations in rounds for d in durations]
    q1, q3 = _quartiles(everything)
    return Timing(median_s=statistics.median(medians), spread_s=q3 - q1, best_s=min(medians),
                  runs=len(everything))
