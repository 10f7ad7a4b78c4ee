"""One candidate, scored: ``Arch`` -> network -> training -> (validation accuracy, costs).

The only module that glues ``space``, ``cse_nets`` and ``search.train`` together; plain
Python, so a trial can be reproduced without Ray::

    evaluation = train_and_score(arch, load_dataset("synthetic"), TrainConfig(epochs=1))
    evaluation.values(objectives_from_names(["accuracy", "params"]))

Accuracy is measured on the validation split, never on the test split; the test split is
for the architectures that are finally retrained (``search.export``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cse_nets import build_network
from search.data import Splits
from search.study.objectives import ACCURACY, MACS, PARAMS, Objective, measure_costs
from search.study.schema import (
    ARCH,
    ARCH_STR,
    DEVICE,
    PEAK_GPU_BYTES,
    SEED,
    TRAIN_SECONDS,
    VAL_ACCURACY_PER_EPOCH,
    VERSIONS,
    WALL_SECONDS,
)
from search.training.config import TrainConfig
from search.training.loop import EpochStats, resolve_device, train_model, versions
from search.training.step import NO_SPEEDUPS, Speedups
from space import Arch

__all__ = ["Evaluation", "train_and_score"]


@dataclass(frozen=True)
class Evaluation:
    """What one trained candidate scored, and how it was made."""

    arch: Arch
    val_accuracy: float  # last epoch's, in [0, 1]
    costs: dict[str, float]  # metric -> value: params, macs and any other cost objective
    val_accuracy_per_epoch: tuple[float, ...]
    train_seconds: float  # the training loop's own time
    wall_seconds: float  # build + count + train + score
    device: str
    seed: int
    peak_gpu_bytes: int | None = None  # CUDA trials: most memory allocated at once

    @property
    def params(self) -> int:
        return int(self.costs[PARAMS.metric])

    @property
    def macs(self) -> int:
        return int(self.costs[MACS.metric])

    def values(self, objectives: Sequence[Objective]) -> list[float]:
        """Objective values in ``objectives`` order."""
        return [self.val_accuracy if o.name == ACCURACY.name else float(self.costs[o.metric])
                for o in objectives]

    def user_attrs(self) -> dict[str, Any]:
        """The trial user attributes (:mod:`search.study.schema`) of this evaluation, with
        every cost under its metric name; all JSON-serialisable, the peak GPU memory on
        CUDA only."""
        return {
            ARCH: self.arch.to_json(indent=None),
            ARCH_STR: str(self.arch),
            **self.costs,
            VAL_ACCURACY_PER_EPOCH: list(self.val_accuracy_per_epoch),
            TRAIN_SECONDS: self.train_seconds,
            WALL_SECONDS: self.wall_seconds,
            DEVICE: self.device,
            SEED: self.seed,
            VERSIONS: versions(),
            **({} if self.peak_gpu_bytes is None else {PEAK_GPU_BYTES: self.peak_gpu_bytes}),
        }


def train_and_score(arch: Arch, splits: Splits, config: TrainConfig,
                    objectives: Sequence[Objective] = (), *,
                    on_epoch: Callable[[Evaluation], None] | None = None,
                    speedups: Speedups = NO_SPEEDUPS) -> Evaluation:
    """Build ``arch`` for the dataset, cost it, train it, score it on the validation split.

    ``on_epoch`` gets the evaluation so far after every epoch (the last one included), so a
    scheduler can stop the candidate early. Raises whatever training raises; ``ValueError``
    if ``splits`` has no validation images (accuracy would be undefined).
    """
    if len(splits.val[1]) == 0:
        raise ValueError("the validation split is empty: the search scores on it")
    start = time.perf_counter()
    shape = splits.info.shape
    model = build_network(arch, shape, seed=config.seed)
    costs = measure_costs(arch, model, shape, objectives)
    device = str(resolve_device(config.device))
    history: list[EpochStats] = []

    def so_far(train_seconds: float, peak_gpu_bytes: int | None = None) -> Evaluation:
        return Evaluation(
            arch=arch,
            val_accuracy=float(history[-1].val_accuracy),
            costs=costs,
            val_accuracy_per_epoch=tuple(float(e.val_accuracy) for e in history),
            train_seconds=train_seconds,
            wall_seconds=time.perf_counter() - start,
            device=device,
            seed=config.seed,
            peak_gpu_bytes=peak_gpu_bytes,
        )

    def epoch_done(stats: EpochStats) -> None:
        history.append(stats)
        if on_epoch is not None:
            on_epoch(so_far(sum(e.seconds for e in history)))

    result = train_model(model, splits, config, on_epoch=epoch_done, speedups=speedups)
    return so_far(float(result.train_seconds), result.peak_gpu_bytes)
