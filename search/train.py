"""One candidate's training: a lean loop over device-resident tensors, validated every epoch.

The data stay on the training device as uint8 tensors; every batch is cropped, flipped and
normalised there (:mod:`search.augment`), so no DataLoader workers or PIL sit in the loop.
The loss is summed on the device and checked for NaN/inf every few steps, so the loop
does not wait for the device after each step but still stops a diverged run.

Command line (bad input prints one ``error: ...`` line and exits 2)::

    python -m search.train --arch paper-mix --dataset fashion-mnist --epochs 1
    python -m search.train --arch my_arch.json --dataset cifar10 --recipe paper --save out/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from cse_nets import build_network, count_parameters
from cse_nets.cli import OneLineParser, exits_on_bad_input, positive_int_arg
from cse_nets.load import save_weights, write_export
from search.augment import Normalize, shuffled_batches
from search.data import (
    DATASETS,
    FOLDER_PREFIX,
    DatasetInfo,
    Splits,
    load_dataset,
    stratified_split,
)
from search.step import NO_SPEEDUPS, Speedups, TrainStep, make_step
from space import PRESETS, load_arch
from space.checks import non_negative_int, positive_int

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
    "main",
    "measure_accuracy",
    "resolve_device",
    "resolve_precision",
    "train_epoch",
    "train_model",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "exponential")
PRECISIONS = ("auto", "fp32", "bf16")
# Steps between checks that the summed loss is finite: each check waits for the device.
FINITE_CHECK_STEPS = 25


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run diverged."""


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
        non_negative_int(self.seed, "train config: seed")
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
    """The learning rate of optimiser step ``step``, counted from 0 over the whole run."""
    total = config.epochs * steps_per_epoch
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


def _optimizer(model: nn.Module, config: TrainConfig, *,
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
    step: TrainStep  # one optimiser step on a uint8 batch (search.step)
    config: TrainConfig
    device: torch.device
    generator: torch.Generator
    steps: int  # optimiser steps per epoch


def _new_run(model: nn.Module, info: DatasetInfo, config: TrainConfig, device: torch.device,
             steps: int, speedups: Speedups) -> _Run:
    normalize = Normalize(info.mean, info.std, device)

    def loss(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with _autocast(config.precision, device):
            logits = net(normalize(x))
        return F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)

    optimizer = _optimizer(model, config,
                           graph_safe=speedups.captures(device, config.epochs))
    step = make_step(model, optimizer, loss, device=device, epochs=config.epochs,
                     speedups=speedups)
    return _Run(model=model, step=step, config=config, device=device,
                generator=torch.Generator(device=device).manual_seed(config.seed), steps=steps)


def train_epoch(run: _Run, batches: Iterable[tuple[Tensor, Tensor]], epoch: int, *,
                on_batch: Callable[[int], object] | None = None) -> float:
    """One pass over ``batches``; the epoch's mean training loss, checked to be finite."""
    config = run.config
    run.model.train()
    loss_sum = torch.zeros((), device=run.device)
    for index, (x, y) in enumerate(batches):
        lr = learning_rate(config, (epoch - 1) * run.steps + index, run.steps)
        loss_sum += run.step(x, y, lr)
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
    change only how a CUDA step runs (:mod:`search.step`). Raises
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
            val_accuracy = measure_accuracy(model, val_images, val_labels, info, device=device,
                                            batch_size=config.eval_batch_size,
                                            precision=config.precision)
        stats = EpochStats(epoch=epoch, train_loss=train_loss, val_accuracy=val_accuracy,
                           images_per_second=min(len(labels), run.steps * config.batch_size)
                           / train_seconds,
                           seconds=time.perf_counter() - epoch_started)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
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


# --- command line ------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m search.train",
                           description="Train one architecture and report validation and "
                                       "test accuracy.")
    add = parser.add_argument
    add("--arch", required=True, help=f"a preset ({', '.join(PRESETS)}) or an architecture "
                                      "JSON file")
    add("--dataset", required=True,
        help=f"one of {', '.join(DATASETS)}, or {FOLDER_PREFIX}PATH for your own images")
    add("--recipe", choices=tuple(RECIPES), default="default",
        help="training recipe; the flags below override its fields")
    add("--epochs", type=positive_int_arg)
    add("--batch-size", type=positive_int_arg)
    add("--lr", type=float, help="peak learning rate")
    add("--subset", type=float, help="fraction of the training split, in (0, 1]")
    add("--seed", type=int, help="split, subset, shuffling, init (default 0)")
    add("--device", help="auto (default), cpu, cuda or cuda:N")
    add("--precision", choices=PRECISIONS, help="auto (default): bf16 on CUDA, fp32 on the CPU")
    add("--data-dir", type=Path, help="downloads and cached tensors")
    add("--strict-images", action="store_true",
        help="refuse an image folder with an undecodable image (default: skip it, warn)")
    add("--val-fraction", type=float, default=0.1,
        help="share of the training set held out for validation")
    add("--input-size", type=positive_int_arg,
        help="resize images to this side (imagenette's default is 64)")
    add("--save", type=Path, metavar="DIR",
        help="write an export directory here: arch.json, model.json, weights.pt, metrics.json")
    return parser


def _config(args: argparse.Namespace) -> TrainConfig:
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "subset": args.subset, "seed": args.seed, "device": args.device,
             "precision": args.precision}
    return replace(RECIPES[args.recipe], **{k: v for k, v in flags.items() if v is not None})


def _print_epoch(epochs: int) -> Callable[[EpochStats], None]:
    def report(stats: EpochStats) -> None:
        val = "-" if stats.val_accuracy is None else f"{stats.val_accuracy:.2%}"
        tqdm.write(f"epoch {stats.epoch}/{epochs}  train loss {stats.train_loss:.4f}  "
                   f"val acc {val}  {stats.images_per_second:.1f} img/s  "
                   f"({stats.seconds:.1f} s)")
    return report


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    arch = load_arch(args.arch)
    config = _config(args)
    device = resolve_device(config.device)
    splits = load_dataset(args.dataset, data_dir=args.data_dir, val_fraction=args.val_fraction,
                          seed=config.seed, input_size=args.input_size,
                          strict_images=args.strict_images)
    info = splits.info
    model = build_network(arch, info.shape, seed=config.seed)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)  # fail now, not after training
    print(f"{arch}\n{count_parameters(model):,} parameters; {info.name} "
          f"{'x'.join(map(str, info.shape.chw))}, train {len(splits.train[1])}, val "
          f"{len(splits.val[1])}, test {len(splits.test[1])}; {device}, "
          f"{resolve_precision(config.precision, device)}")
    try:
        result = train_model(model, splits, config, on_epoch=_print_epoch(config.epochs),
                             progress=True)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    accuracy = final_test_accuracy(model, splits, config)
    print(f"test acc {accuracy:.2%}  ({result.train_seconds:.1f} s training)")
    if args.save is not None:
        metrics = {
            "arch": str(arch), "dataset": info.name, "input_shape": list(info.shape.chw),
            "num_classes": info.shape.num_classes, "params": count_parameters(model),
            "train_config": asdict(config), "val_fraction": args.val_fraction,
            "history": [asdict(s) for s in result.history],
            "val_accuracy": result.val_accuracy, "best_val_accuracy": result.best_val_accuracy,
            "test_accuracy": accuracy, "train_seconds": result.train_seconds,
            "device": result.device, "precision": resolve_precision(config.precision, device),
            "seed": config.seed, "versions": versions(),
        }
        write_export(args.save, arch, info.shape, {"dataset": info.name,
                                                   "class_names": info.class_names,
                                                   "normalization": info.normalization()})
        save_weights(model, args.save)
        (args.save / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
