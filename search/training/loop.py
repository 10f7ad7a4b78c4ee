"""One candidate's training: a lean loop over device-resident tensors, validated every epoch.

The data stay on the training device as uint8 tensors; every batch is cropped, flipped and
normalised there (:mod:`search.data.augment`), so no DataLoader workers or PIL sit in the loop.
The loss is summed on the device and checked for NaN/inf every few steps, so the loop
does not wait for the device after each step but still stops a diverged run.

The command line is :mod:`search.train`.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from search.data.augment import Normalize, shuffled_batches
from search.data.splits import DatasetInfo, Splits, stratified_split
from search.training.config import TrainConfig
from search.training.step import NO_SPEEDUPS, Speedups, TrainStep, make_step

__all__ = ["EpochStats", "NonFiniteLossError", "TrainResult", "final_test_accuracy",
           "learning_rate", "make_optimizer", "measure_accuracy", "resolve_device",
           "resolve_precision", "train_epoch", "train_model", "versions"]

# Steps between checks that the summed loss is finite: each check waits for the device.
FINITE_CHECK_STEPS = 25


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run diverged."""


@dataclass(frozen=True)
class EpochStats:
    """What one epoch did; passed to the ``on_epoch`` callback as soon as it ends."""

    epoch: int  # counted from 1
    train_loss: float  # mean over the epoch's batches (with label smoothing)
    val_accuracy: float | None  # fraction in [0, 1]; None without a validation split
    images_per_second: float  # training images / training seconds (evaluation excluded)
    seconds: float  # wall time of the epoch, training and evaluation


@dataclass(frozen=True)
class TrainResult:
    history: tuple[EpochStats, ...]
    val_accuracy: float | None  # after the last epoch
    best_val_accuracy: float | None  # over all epochs
    train_seconds: float  # wall time of the whole run, evaluation included
    device: str
    peak_gpu_bytes: int | None = None  # most CUDA memory allocated at once (None: CPU)


_PACKAGES = ("torch", "torchvision", "optuna", "ray", "cse-nas")


def versions() -> dict[str, str]:
    """Python and the packages a result depends on (for tracing a figure to its run)."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; an unusable device is a ValueError."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(spec: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``; ``"auto"`` is bf16 on CUDA and fp32 on the CPU."""
    if spec != "auto":
        return spec
    # On the CPU bf16 pays off for large networks only (README, "Measured"), and without
    # native bf16 it is slower still.
    return "bf16" if device.type == "cuda" else "fp32"


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if resolve_precision(precision, device) == "bf16":
        # No cast cache: CUDA-graph capture forbids it, and each weight is cast once per
        # forward pass anyway, so it saves nothing here.
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimiser step ``step``, counted from 0 over the whole run; with
    ``anneal_at``, of its step within the cycle (warm-up, then the decay) it falls in."""
    start, end = 0, config.epochs
    for boundary in config.anneal_at:
        if step < boundary * steps_per_epoch:
            end = boundary
            break
        start = boundary
    step -= start * steps_per_epoch
    total = (end - start) * steps_per_epoch
    warm = config.warmup * total
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    progress = max(0.0, (step - warm) / max(1.0, total - warm))  # 0 -> 1 after warm-up
    if config.schedule == "onecycle":
        factor *= 1.0 - progress
    elif config.schedule == "cosine":
        factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        factor *= config.lr_decay ** (step // steps_per_epoch)
    return config.lr * factor


def make_optimizer(model: nn.Module, config: TrainConfig, *,
                   graph_safe: bool = False) -> torch.optim.Optimizer:
    """SGD or AdamW; ``graph_safe`` (CUDA only) keeps each group's lr as a device tensor and
    picks the fused SGD / capturable AdamW kernels, which read it without a host sync."""
    params = [p for p in model.parameters() if p.requires_grad]
    # Weight decay is meant for conv and linear weights; on the 1-D tensors (BatchNorm
    # scales, biases, PReLU slopes) it only pulls them towards 0, so they get none.
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    if graph_safe:
        for group in groups:
            group["lr"] = torch.tensor(config.lr, device=params[0].device)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999),
                                 capturable=graph_safe)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, fused=graph_safe or None)


def _finite_mean(loss_sum: Tensor, steps: int, epoch: int, config: TrainConfig) -> float:
    mean = loss_sum.item() / steps  # waits for the device
    if not math.isfinite(mean):
        raise NonFiniteLossError(
            f"training loss became {mean} in epoch {epoch} (within its first {steps} steps); "
            f"the run diverged: lower the learning rate (lr={config.lr}) or use fp32"
        )
    return mean


def _training_pair(splits: Splits, config: TrainConfig) -> tuple[Tensor, Tensor]:
    images, labels = splits.train
    if config.subset < 1:
        _, keep = stratified_split(labels, config.subset, config.seed)
        images, labels = images[keep], labels[keep]
    if len(labels) == 0:
        raise ValueError(f"no training images (train split {len(splits.train[1])}, "
                         f"subset {config.subset})")
    return images, labels


@dataclass(frozen=True)
class _Run:
    """What every epoch of one training run shares."""

    model: nn.Module
    step: TrainStep  # one optimiser step on a uint8 batch (search.training.step)
    config: TrainConfig
    device: torch.device
    generator: torch.Generator
    steps: int  # optimiser steps per epoch
    average: AveragedModel | None  # the weight average that is scored (TrainConfig.ema)

    @property
    def scored(self) -> nn.Module:
        """What validation measures: the weight average if there is one."""
        return self.model if self.average is None else self.average.module


def _weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None for decay 0).

    The decay starts low, min(decay, (1 + n) / (10 + n)) after n updates, so that a short run
    is not dominated by its initial weights; n is counted here, not read from the device."""
    if decay == 0:
        return None
    updates = 0

    def update(averaged: list[Tensor], current: list[Tensor], _: Tensor) -> None:
        nonlocal updates
        updates += 1
        weight = 1.0 - min(decay, (1 + updates) / (10 + updates))
        for mean, value in zip(averaged, current, strict=True):
            if mean.is_floating_point():
                mean.lerp_(value, weight)
            else:  # BatchNorm's batch counters
                mean.copy_(value)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _new_run(model: nn.Module, info: DatasetInfo, config: TrainConfig, device: torch.device,
             steps: int, speedups: Speedups) -> _Run:
    normalize = Normalize(info.mean, info.std, device)

    def loss(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with _autocast(config.precision, device):
            logits = net(normalize(x))
        return F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)

    optimizer = make_optimizer(model, config,
                               graph_safe=speedups.captures(device, config.epochs))
    step = make_step(model, optimizer, loss, device=device, epochs=config.epochs,
                     speedups=speedups)
    return _Run(model=model, step=step, config=config, device=device,
                generator=torch.Generator(device=device).manual_seed(config.seed), steps=steps,
                average=_weight_average(model, config.ema))


def train_epoch(run: _Run, batches: Iterable[tuple[Tensor, Tensor]], epoch: int, *,
                on_batch: Callable[[int], object] | None = None) -> float:
    """One pass over ``batches``; the epoch's mean training loss, checked to be finite."""
    config = run.config
    run.model.train()
    loss_sum = torch.zeros((), device=run.device)
    for index, (x, y) in enumerate(batches):
        lr = learning_rate(config, (epoch - 1) * run.steps + index, run.steps)
        loss_sum += run.step(x, y, lr)
        if run.average is not None:
            run.average.update_parameters(run.model)
        if (index + 1) % FINITE_CHECK_STEPS == 0:
            _finite_mean(loss_sum, index + 1, epoch, config)
        if on_batch is not None:
            on_batch(len(y))
    return _finite_mean(loss_sum, run.steps, epoch, config)


def train_model(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: bool = False,
    speedups: Speedups = NO_SPEEDUPS,
) -> TrainResult:
    """Train ``model`` in place on ``splits.train``; validate on ``splits.val`` every epoch.

    ``on_epoch`` is called after each epoch; ``progress`` shows a tqdm bar; ``speedups``
    change only how a CUDA step runs (:mod:`search.training.step`). Raises
    :class:`NonFiniteLossError` if the loss becomes NaN or infinite.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    if device.type == "cuda":  # a reused worker's previous trials are not this one's peak
        torch.cuda.reset_peak_memory_stats(device)
    info = splits.info
    images, labels = (t.to(device) for t in _training_pair(splits, config))
    val_images, val_labels = (t.to(device) for t in splits.val)
    model.to(device=device, memory_format=torch.channels_last)
    run = _new_run(model, info, config, device, max(1, len(labels) // config.batch_size),
                   speedups)
    history: list[EpochStats] = []
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        batches = shuffled_batches(images, labels, batch_size=config.batch_size,
                                   aug=info.augment, generator=run.generator)
        bar = tqdm(total=min(len(labels), run.steps * config.batch_size), unit="img",
                   desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False)
        with bar:
            train_loss = train_epoch(run, batches, epoch, on_batch=bar.update)
        train_seconds = time.perf_counter() - epoch_started
        val_accuracy = None
        if len(val_labels):
            val_accuracy = measure_accuracy(run.scored, val_images, val_labels, info,
                                            device=device,
                                            batch_size=config.eval_batch_size,
                                            precision=config.precision)
        stats = EpochStats(epoch=epoch, train_loss=train_loss, val_accuracy=val_accuracy,
                           images_per_second=min(len(labels), run.steps * config.batch_size)
                           / train_seconds,
                           seconds=time.perf_counter() - epoch_started)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    if run.average is not None:
        model.load_state_dict(run.average.module.state_dict())
    accuracies = [s.val_accuracy for s in history if s.val_accuracy is not None]
    return TrainResult(
        history=tuple(history),
        val_accuracy=history[-1].val_accuracy,
        best_val_accuracy=max(accuracies) if accuracies else None,
        train_seconds=time.perf_counter() - started,
        device=str(device),
        peak_gpu_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    )


def measure_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    info: DatasetInfo,
    *,
    device: torch.device | str,
    batch_size: int = TrainConfig.eval_batch_size,
    precision: str = "auto",
) -> float:
    """Top-1 accuracy of ``model`` on uint8 ``images``, a fraction in [0, 1].

    Runs in eval mode under ``torch.inference_mode`` and restores the model's mode.
    """
    if len(labels) == 0:
        raise ValueError("measure_accuracy: no images")
    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device=device, memory_format=torch.channels_last)
    normalize = Normalize(info.mean, info.std, device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.inference_mode(), _autocast(precision, device):
        for start in range(0, len(labels), batch_size):
            x = normalize(images[start:start + batch_size].to(device))
            y = labels[start:start + batch_size].to(device)
            correct += (model(x).argmax(dim=1) == y).sum()
    model.train(was_training)
    return correct.item() / len(labels)


def final_test_accuracy(model: nn.Module, splits: Splits, config: TrainConfig) -> float:
    """Accuracy on the **test** split: for final evaluation only, never for selection."""
    return measure_accuracy(model, *splits.test, splits.info,
                            device=resolve_device(config.device),
                            batch_size=config.eval_batch_size, precision=config.precision)
