"""What one trial needs in memory, estimated from sizes before it runs, to declare to Ray.

Ray starts a trial only where its declared ``memory`` is free, so trials that would not
fit side by side wait instead of being killed by Ray's memory monitor. The estimate is a
Ray worker with torch imported, the images the trial holds, and the larger of training
(weights, gradients and momentum; the activations of one batch, kept for the backward
pass) and evaluation (the activations of one evaluation batch, freed layer by layer),
times a margin. The factors are measured with ``benchmarks/bench_trial_memory.py``
(README, "Memory").
"""

from __future__ import annotations

from dataclasses import dataclass

from search.data import Splits
from search.training import TrainConfig
from space import Arch, InputShape
from space.footprint import FLOAT_BYTES, network_footprint

__all__ = ["TrialMemory"]

# Measured on the CPU: paper-mix on Fashion-MNIST peaks 1.77 GB above the imports at batch 64
# (1.2 x the footprint's 1.49 GB of activations) and 0.31 GB at evaluation batch 128.
WORKER_BYTES = 700_000_000  # a trial's process with torch and this package imported
TRAIN_ACTIVATION_FACTOR = 1.2  # peak bytes per forward activation byte, backward included
EVAL_ACTIVATION_FACTOR = 0.1  # inference frees each layer's input once it is used
OPTIMIZER_COPIES = 4  # weights, gradients, momentum, one transient copy
MARGIN = 1.25


@dataclass(frozen=True)
class TrialMemory:
    """The inputs of the estimate that all trials of a search share."""

    shape: InputShape
    batch_size: int
    eval_batch_size: int
    data_bytes: int  # training and validation images, as a trial receives them

    @classmethod
    def for_search(cls, splits: Splits, config: TrainConfig) -> TrialMemory:
        images = splits.train[0].numel() + splits.val[0].numel()  # uint8: one byte each
        return cls(shape=splits.info.shape, batch_size=config.batch_size,
                   eval_batch_size=config.eval_batch_size, data_bytes=images)

    def estimate(self, arch: Arch) -> int:
        """Bytes one trial of ``arch`` is expected to peak at, margin included."""
        footprint = network_footprint(arch, self.shape)
        training = (footprint.image_bytes * self.batch_size * TRAIN_ACTIVATION_FACTOR
                    + footprint.params * FLOAT_BYTES * OPTIMIZER_COPIES)
        evaluation = footprint.image_bytes * self.eval_batch_size * EVAL_ACTIVATION_FACTOR
        # The images arrive once from the object store, and a subset is copied out of them.
        data = 2 * self.data_bytes
        return int(MARGIN * (WORKER_BYTES + data + max(training, evaluation)))
