"""How one candidate is trained: :class:`TrainConfig` (a frozen value, units in its field
comments) and the named recipes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from space.checks import positive_int, seed_int

__all__ = ["OPTIMIZERS", "PRECISIONS", "RECIPES", "SCHEDULES", "TrainConfig"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "exponential")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained; each field's comment gives its unit or choices."""

    epochs: int = 1  # passes over the (subset of the) training split
    batch_size: int = 128  # images per optimiser step
    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov if set) or "adamw"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    nesterov: bool = True  # SGD only
    weight_decay: float = 5e-4  # on conv and linear weights; norms, biases, slopes get none
    label_smoothing: float = 0.1  # probability mass spread evenly over all classes
    # After warm-up, "onecycle" falls linearly to 0, "cosine" along a half cosine to 0,
    # and "exponential" is multiplied by lr_decay after every epoch.
    schedule: str = "onecycle"
    warmup: float = 0.1  # fraction of all steps over which the lr rises linearly from ~0
    lr_decay: float = 0.98  # "exponential" only: lr multiplier per epoch
    # Epochs (before the last) at which the schedule has run its whole course and starts
    # again, warm-up included: at MO-ASHA's rungs, so that a rung scores an annealed model
    # rather than one mid-schedule (benchmarks/bench_fidelity.py measured the difference).
    anneal_at: tuple[int, ...] = ()
    # Decay per step of an exponential moving average of the weights (and BatchNorm
    # statistics); 0 is none. With one, validation scores the average, and the trained
    # model ends holding it. Early steps average with min(ema, (1 + n) / (10 + n)).
    ema: float = 0.0
    subset: float = 1.0  # fraction of the training split used (per class, drawn with seed)
    seed: int = 0  # subset, shuffling and augmentation (not the model's initial weights)
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1"
    precision: str = "auto"  # "fp32", "bf16" (autocast), "auto": see resolve_precision
    # Images per forward pass when evaluating: 128 peaks 0.3 GB above the model on the CPU
    # for paper-mix at 28x28, where 1,024 took 1.45 GB (benchmarks/bench_trial_memory.py).
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            positive_int(getattr(self, name), f"train config: {name}")
        seed_int(self.seed, "train config: seed")
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"train config: {name} must be one of {', '.join(choices)}, "
                                 f"got {getattr(self, name)!r}")
        _check_range("lr", self.lr, 0, math.inf, low_open=True)
        _check_range("momentum", self.momentum, 0, 1)
        _check_range("weight_decay", self.weight_decay, 0, math.inf)
        _check_range("label_smoothing", self.label_smoothing, 0, 1)
        _check_range("warmup", self.warmup, 0, 1)
        _check_range("lr_decay", self.lr_decay, 0, 1, low_open=True, high_closed=True)
        _check_range("subset", self.subset, 0, 1, low_open=True, high_closed=True)
        if isinstance(self.anneal_at, list):  # as a study's JSON gives it back
            object.__setattr__(self, "anneal_at", tuple(self.anneal_at))
        if not isinstance(self.anneal_at, tuple):
            raise ValueError(f"train config: anneal_at must be a tuple of epochs, "
                             f"got {self.anneal_at!r}")
        for epoch in self.anneal_at:
            positive_int(epoch, "train config: anneal_at epoch")
        if list(self.anneal_at) != sorted(set(self.anneal_at)) or (
                self.anneal_at and self.anneal_at[-1] >= self.epochs):
            raise ValueError(f"train config: anneal_at must be increasing epochs before the "
                             f"last ({self.epochs}), got {self.anneal_at!r}")
        _check_range("ema", self.ema, 0, 1)
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("train config: nesterov needs momentum > 0")


def _check_range(name: str, value: float, low: float, high: float, *,
                 low_open: bool = False, high_closed: bool = False) -> None:
    """Check ``low <= value < high`` (``<`` / ``<=`` as flagged); NaN always fails."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"train config: {name} must be a number, got {value!r}")
    above = value > low if low_open else value >= low
    below = value <= high if high_closed else value < high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{']' if high_closed else ')'}"
        raise ValueError(f"train config: {name} must be in {interval}, got {value!r}")


RECIPES: dict[str, TrainConfig] = {
    # Tuned for 1-epoch budgets; the comparison behind it is in the README ("Measured").
    "default": TrainConfig(),
    # The paper's recipe (Park & Kim): SGD lr 0.045, momentum 0.9, weight decay 4e-5,
    # lr x0.98 after every epoch, batch 16, 200 epochs; no warm-up or smoothing stated.
    # As in every recipe here, the 1-D tensors get no weight decay.
    "paper": TrainConfig(
        epochs=200, batch_size=16, optimizer="sgd", lr=0.045, momentum=0.9, nesterov=False,
        weight_decay=4e-5, label_smoothing=0.0, schedule="exponential", warmup=0.0,
        lr_decay=0.98,
    ),
}
