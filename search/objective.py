"""One candidate, scored: ``Arch`` -> network -> training -> (validation accuracy, cost).

The only module that glues ``space``, ``cse_nets`` and ``search.train`` together; plain
Python, so a trial can be reproduced without Ray::

    evaluation = evaluate(arch, load_dataset("synthetic"), TrainConfig(epochs=1))
    evaluation.values(("accuracy", "params"))

Accuracy is measured on the validation split, never on the test split; the test split is
for the architectures that are finally retrained (``search.export``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cse_nets import build_network, count_macs, count_parameters
from search.data import Splits
from search.train import TrainConfig, train_model, versions
from space import Arch

__all__ = ["DIRECTIONS", "METRIC_NAMES", "Evaluation", "evaluate"]

# Objective -> the study's metric name and direction (README, "What a study holds").
METRIC_NAMES = {"accuracy": "val_accuracy", "params": "params", "macs": "macs"}
DIRECTIONS = {"accuracy": "maximize", "params": "minimize", "macs": "minimize"}


@dataclass(frozen=True)
class Evaluation:
    """What one trained candidate scored, and how it was made."""

    arch: Arch
    val_accuracy: float  # last epoch's, in [0, 1]
    params: int  # trainable
    macs: int  # per image
    val_accuracy_per_epoch: tuple[float, ...]
    train_seconds: float  # the training loop's own time
    wall_seconds: float  # build + count + train + evaluate
    device: str
    seed: int

    def values(self, objectives: Sequence[str]) -> list[float]:
        """Objective values in ``objectives`` order (names from :data:`METRIC_NAMES`)."""
        by_name = {"accuracy": self.val_accuracy, "params": self.params, "macs": self.macs}
        return [float(by_name[name]) for name in objectives]

    def user_attrs(self) -> dict[str, Any]:
        """The trial user attributes the README lists, all JSON-serialisable."""
        return {
            "arch": self.arch.to_json(indent=None),
            "arch_str": str(self.arch),
            "params": self.params,
            "macs": self.macs,
            "val_accuracy_per_epoch": list(self.val_accuracy_per_epoch),
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "device": self.device,
            "seed": self.seed,
            "versions": versions(),
        }




def evaluate(arch: Arch, splits: Splits, config: TrainConfig) -> Evaluation:
    """Build ``arch`` for the dataset, count it, train it; raises whatever training raises.

    ``ValueError`` if ``splits`` has no validation images (accuracy would be undefined).
    """
    if len(splits.val[1]) == 0:
        raise ValueError("the validation split is empty: the search scores on it")
    start = time.perf_counter()
    info = splits.info
    model = build_network(arch, info.shape, seed=config.seed)
    params = count_parameters(model)
    macs = count_macs(model, info.shape.chw)
    result = train_model(model, splits, config)
    return Evaluation(
        arch=arch,
        val_accuracy=float(result.val_accuracy),
        params=params,
        macs=macs,
        val_accuracy_per_epoch=tuple(float(e.val_accuracy) for e in result.history),
        train_seconds=float(result.train_seconds),
        wall_seconds=time.perf_counter() - start,
        device=str(result.device),
        seed=config.seed,
    )
