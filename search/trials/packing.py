"""How many trials share one GPU, and the memory share that keeps each one to its own.

Ray's fractional GPUs are bookkeeping only: nothing stops one trial from taking the memory
its neighbours need. So the search sizes the share from an estimate and enforces it:

1. **Estimate** (:func:`trial_memory`): the largest network the search space can produce
   for the dataset's input (every stage a BTN block with t=6, the widest channels, four
   blocks, stride 1 until the three forced halvings) is run once on the ``meta`` device,
   counting the bytes autograd saves for backward per image. A trial needs that times the
   batch, times 1.5 for backward's transient gradients and allocator fragmentation, plus
   weights, gradients and optimiser state, one evaluation batch, and the dataset it keeps
   on the GPU (:mod:`search.trials.shared_data`). Since no sampled architecture is larger, the
   estimate bounds every trial of the search.
2. **Packing** (:func:`plan_packing`): the most trials, at most
   :data:`MAX_TRIALS_PER_GPU`, whose estimates plus one CUDA context each fit into the
   GPU's memory less a reserve.
3. **Enforcement** (:func:`limit_process_memory`): each trial's process caps PyTorch's
   allocator at its share (``torch.cuda.set_per_process_memory_fraction``). The shares and
   contexts add up to less than the GPU, so a trial can only run out of memory by
   exceeding its own share; it then fails alone, with a reason that says so (recorded as
   the trial's ``fail_reason``), and its neighbours carry on.

The cap of trials per GPU is a throughput argument, not a memory one (numbers unmeasured
on our GPUs; ``benchmarks/gpu_check.sh`` measures 1, 2, 4 and 8): a paper-mix step at
32 px, batch 128, is about 1,000 kernel launches (~5 ms of Python and launch time at
~5 us each) for 62 GFLOP of mostly depthwise, memory-bound work (~1-2 ms on an H100).
One trial thus leaves the GPU idle most of the time; about four trials fill the gaps
(HFTA measured 2.4x from three fused MobileNetV2 jobs on a V100; co-location on an A100
gave up to 4x, Robroek et al. 2022), and more add contexts and time-slicing but little work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ray
import torch

from cse_nets import build_network, count_parameters
from search.data import Splits
from search.training import TrainConfig, resolve_precision
from space import Arch, InputShape
from space.sample import CHOICES, arch_from_params

__all__ = [
    "CUDA_CONTEXT_BYTES",
    "MAX_TRIALS_PER_GPU",
    "Packing",
    "activation_bytes",
    "fixed_packing",
    "gpu_memory_bytes",
    "largest_arch",
    "limit_process_memory",
    "plan_gpu_packing",
    "plan_packing",
    "trial_memory",
]

MAX_TRIALS_PER_GPU = 4  # see the module docstring; an estimate until gpu_check.sh measures it
# Each process's CUDA context (kernels, cuDNN/cuBLAS handles) lives outside PyTorch's
# allocator and its cap; ~0.5 GiB with lazy module loading, rounded up.
CUDA_CONTEXT_BYTES = 768 * 2**20
GPU_RESERVE = 0.05  # of the GPU's memory kept free of all shares (other users, the driver)
ACTIVATION_OVERHEAD = 1.5  # backward's transient gradients, allocator fragmentation
OPTIMIZER_COPIES = {"sgd": 3, "adamw": 4}  # fp32 copies per parameter: weight, grad, state
_BYTES = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class Packing:
    """What :func:`plan_packing` decided for one GPU."""

    trials_per_gpu: int
    gpus_per_trial: float  # Ray's resource request: 1 / trials_per_gpu
    memory_fraction: float | None  # allocator cap per trial process; None: no cap (alone)
    trial_bytes: int  # the estimate it was sized for


def largest_arch(input_size: int) -> Arch:
    """The space's most memory-hungry network for ``input_size`` (see the module docstring)."""
    # Every other field at its largest value (t, c, n, stem, head ratio, cap).
    fixed = {"op": "btn", "s": 1, "r": 8, "head_op": "dense", "act": "prelu"}
    params = {name: fixed.get(name.rsplit(".", 1)[-1]) or max(choices)
              for name, choices in CHOICES.items()}
    return arch_from_params(params, input_size)


def activation_bytes(arch: Arch, shape: InputShape, precision: str) -> tuple[int, int]:
    """(bytes autograd saves per image for backward, bytes of the largest saved tensor).

    Counted on the ``meta`` device (shapes only, no memory, no arithmetic) and converted
    from fp32 to ``precision``'s element size.
    """
    network = build_network(arch, shape).to("meta").train()
    sizes: dict[int, int] = {}

    def count(tensor: torch.Tensor) -> torch.Tensor:
        sizes[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    batch = 2  # BatchNorm in training mode needs more than one value per channel
    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        network(torch.zeros(batch, *shape.chw, device="meta"))
    scale = _BYTES[precision] / 4
    return (int(sum(sizes.values()) / batch * scale),
            int(max(sizes.values(), default=0) / batch * scale))


def trial_memory(shape: InputShape, *, batch_size: int, eval_batch_size: int, precision: str,
                 optimizer: str, dataset_bytes: int) -> int:
    """GPU bytes (allocator only) one trial of the search may need at most."""
    arch = largest_arch(shape.input_size)
    saved, largest = activation_bytes(arch, shape, precision)
    params = count_parameters(build_network(arch, shape))
    training = saved * batch_size * ACTIVATION_OVERHEAD
    evaluation = largest * eval_batch_size * 2  # a layer's input and output, no autograd
    return int(training + evaluation + params * 4 * OPTIMIZER_COPIES[optimizer]
               + dataset_bytes)


def _shared(trials: int, gpu_bytes: int, trial_bytes: int,
            gpus_per_trial: float | None = None) -> Packing:
    """``trials`` on one GPU, each capped at ``(gpu_bytes * (1 - reserve)) / trials - context``
    bytes; one trial alone gets the whole GPU, uncapped."""
    share = gpu_bytes * (1 - GPU_RESERVE) / trials - CUDA_CONTEXT_BYTES
    return Packing(trials_per_gpu=trials, gpus_per_trial=gpus_per_trial or 1 / trials,
                   memory_fraction=share / gpu_bytes if trials > 1 else None,
                   trial_bytes=trial_bytes)


def plan_packing(trial_bytes: int, gpu_bytes: int, *,
                 max_trials: int = MAX_TRIALS_PER_GPU) -> Packing:
    """The most trials (<= ``max_trials``) whose capped shares cover ``trial_bytes``."""
    if trial_bytes <= 0 or gpu_bytes <= 0 or max_trials < 1:
        raise ValueError(f"plan_packing: {trial_bytes=}, {gpu_bytes=}, {max_trials=} "
                         "must be positive")
    for trials in range(max_trials, 1, -1):
        packing = _shared(trials, gpu_bytes, trial_bytes)
        if packing.memory_fraction * gpu_bytes >= trial_bytes:  # type: ignore[operator]
            return packing
    return _shared(1, gpu_bytes, trial_bytes)


def fixed_packing(gpus_per_trial: float, trial_bytes: int, gpu_bytes: int) -> Packing:
    """The user's ``--gpus-per-trial``: Ray fits ``floor(1 / g)`` trials on a GPU, each
    capped at its share as in :func:`plan_packing` (even below the estimate: asked for)."""
    if gpus_per_trial <= 0:
        raise ValueError(f"fixed_packing: {gpus_per_trial=} must be positive")
    trials = max(1, math.floor(1 / gpus_per_trial + 1e-9))
    return _shared(trials, gpu_bytes, trial_bytes, gpus_per_trial)


def plan_gpu_packing(splits: Splits, config: TrainConfig, *, gpus_per_trial: float | None,
                     pack: bool = True) -> Packing:
    """The search's packing for GPU trials of ``config`` on ``splits``: ``gpus_per_trial``
    as given, or ``None`` for automatic (one trial per GPU unless ``pack``)."""
    dataset_bytes = sum(t.numel() * t.element_size() for t in (*splits.train, *splits.val))
    trial_bytes = trial_memory(
        splits.info.shape, batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        precision=resolve_precision(config.precision, torch.device("cuda")),
        optimizer=config.optimizer, dataset_bytes=dataset_bytes)
    gpu_bytes = gpu_memory_bytes()
    if gpus_per_trial is not None:
        return fixed_packing(gpus_per_trial, trial_bytes, gpu_bytes)
    return plan_packing(trial_bytes, gpu_bytes, max_trials=MAX_TRIALS_PER_GPU if pack else 1)


def _visible_gpu_memory() -> int:
    # Reading the properties creates no CUDA context (that comes with the first allocation).
    return torch.cuda.get_device_properties(0).total_memory


def gpu_memory_bytes() -> int:
    """Memory of one GPU of the Ray cluster (all taken to be alike): read here when this
    process sees a GPU, else by a one-off task on one (its worker exits after it)."""
    if torch.cuda.is_available():
        return _visible_gpu_memory()
    probe = ray.remote(num_gpus=1, max_calls=1)(_visible_gpu_memory)
    return ray.get(probe.remote())


def limit_process_memory(fraction: float | None) -> None:
    """Cap this process's CUDA allocator at ``fraction`` of its (first visible) GPU.

    Ray sets ``CUDA_VISIBLE_DEVICES`` for a trial, so device 0 is the GPU it was given.
    """
    if fraction is not None and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction, 0)

