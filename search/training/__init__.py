"""Training: one candidate's recipe (:mod:`~search.training.config`), the loop
(:mod:`~search.training.loop`), its optimiser step (:mod:`~search.training.step`), and the
glue that scores one architecture (:mod:`~search.training.evaluate`).

Imports ``space``, ``cse_nets`` and :mod:`search.data`; nothing here knows of Ray or Optuna.
This front re-exports the public names.
"""

from search.training.config import OPTIMIZERS, PRECISIONS, RECIPES, SCHEDULES, TrainConfig
from search.training.loop import (
    EpochStats,
    NonFiniteLossError,
    TrainResult,
    final_test_accuracy,
    learning_rate,
    make_optimizer,
    measure_accuracy,
    resolve_device,
    resolve_precision,
    train_epoch,
    train_model,
    versions,
)

__all__ = [
    "OPTIMIZERS",
    "PRECISIONS",
    "RECIPES",
    "SCHEDULES",
    "EpochStats",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "final_test_accuracy",
    "learning_rate",
    "make_optimizer",
    "measure_accuracy",
    "resolve_device",
    "resolve_precision",
    "train_epoch",
    "train_model",
    "versions",
]
