"""Packing trials on a GPU: the memory estimate, the packing rule and its cap."""

from __future__ import annotations

import random

import pytest
import torch

from search.data import load_dataset
from search.training import TrainConfig
from search.trials import packing
from search.trials.packing import (
    CUDA_CONTEXT_BYTES,
    MAX_TRIALS_PER_GPU,
    activation_bytes,
    fixed_packing,
    largest_arch,
    limit_process_memory,
    plan_gpu_packing,
    plan_packing,
    trial_memory,
)
from space import dataset_shape, preset
from space.sample import CHOICES, arch_from_params

GiB = 2**30
CIFAR = dataset_shape("cifar10")
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: the cap is a CUDA allocator setting")


def _random_arch(seed: int, input_size: int = 32):
    rng = random.Random(seed)
    return arch_from_params({name: rng.choice(c) for name, c in CHOICES.items()}, input_size)


def test_largest_arch_bounds_presets_and_samples() -> None:
    worst, _ = activation_bytes(largest_arch(32), CIFAR, "fp32")
    others = [preset("paper-mix"), preset("mobilenetv2"), *(_random_arch(s) for s in range(6))]
    assert all(activation_bytes(a, CIFAR, "fp32")[0] < worst for a in others)


def test_activation_bytes_on_meta_match_a_real_forward_pass() -> None:
    from cse_nets import build_network

    arch = preset("paper-mix")
    network = build_network(arch, CIFAR).train()
    storages: dict[int, int] = {}

    def count(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        network(torch.rand(2, *CIFAR.chw))
    real = sum(storages.values()) / 2
    meta, largest = activation_bytes(arch, CIFAR, "fp32")
    assert meta == pytest.approx(real, rel=0.05)
    assert 0 < largest < meta
    assert activation_bytes(arch, CIFAR, "bf16")[0] == pytest.approx(meta / 2, rel=0.01)


def test_trial_memory_grows_with_batch_and_shrinks_with_bf16() -> None:
    def estimate(batch: int, precision: str = "bf16", optimizer: str = "sgd") -> int:
        return trial_memory(CIFAR, batch_size=batch, eval_batch_size=1024, precision=precision,
                            optimizer=optimizer, dataset_bytes=150 * 2**20)

    assert estimate(128) < estimate(256) < estimate(128, "fp32")
    assert estimate(128) < estimate(128, optimizer="adamw")
    assert 5 * GiB < estimate(128) < 40 * GiB  # the worst case of the space at 32 px


@pytest.mark.parametrize("trial_gib", [0.1, 2, 10, 20, 30, 60, 200])
@pytest.mark.parametrize("gpu_gib", [16, 80, 141])
def test_packed_shares_cover_the_estimate_and_fit_the_gpu(trial_gib: float,
                                                          gpu_gib: int) -> None:
    trial, gpu = int(trial_gib * GiB), gpu_gib * GiB
    plan = plan_packing(trial, gpu)
    assert 1 <= plan.trials_per_gpu <= MAX_TRIALS_PER_GPU
    assert plan.gpus_per_trial == pytest.approx(1 / plan.trials_per_gpu)
    if plan.trials_per_gpu == 1:
        assert plan.memory_fraction is None  # alone: the whole GPU
        return
    share = plan.memory_fraction * gpu
    assert share >= trial
    assert plan.trials_per_gpu * (share + CUDA_CONTEXT_BYTES) <= gpu
    # one more trial would not have fitted (or the cap was reached)
    if plan.trials_per_gpu < MAX_TRIALS_PER_GPU:
        denser = plan_packing(trial, gpu, max_trials=plan.trials_per_gpu + 1)
        assert denser.trials_per_gpu == plan.trials_per_gpu


def test_packing_extremes_and_bad_input() -> None:
    assert plan_packing(GiB // 10, 141 * GiB).trials_per_gpu == MAX_TRIALS_PER_GPU
    assert plan_packing(GiB // 10, 141 * GiB, max_trials=1).trials_per_gpu == 1
    assert plan_packing(500 * GiB, 141 * GiB).memory_fraction is None
    with pytest.raises(ValueError, match="must be positive"):
        plan_packing(0, GiB)


@pytest.mark.parametrize(("gpus", "trials", "capped"),
                         [(0.25, 4, True), (0.3, 3, True), (0.5, 2, True), (1.0, 1, False),
                          (2.0, 1, False)])
def test_fixed_fractions_are_capped_at_their_share(gpus: float, trials: int,
                                                   capped: bool) -> None:
    plan = fixed_packing(gpus, GiB, 80 * GiB)
    assert (plan.trials_per_gpu, plan.gpus_per_trial) == (trials, gpus)
    assert (plan.memory_fraction is not None) == capped
    if capped:
        assert trials * (plan.memory_fraction * 80 * GiB + CUDA_CONTEXT_BYTES) <= 80 * GiB


def test_plan_gpu_packing_auto_fixed_and_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "gpu_memory_bytes", lambda: 141 * GiB)
    splits = load_dataset("synthetic", input_size=32)
    config = TrainConfig(batch_size=128, device="cuda")
    auto = plan_gpu_packing(splits, config, gpus_per_trial=None)
    assert auto.trials_per_gpu == MAX_TRIALS_PER_GPU and auto.memory_fraction is not None
    assert plan_gpu_packing(splits, config, gpus_per_trial=None, pack=False).trials_per_gpu == 1
    assert plan_gpu_packing(splits, config, gpus_per_trial=0.5).trials_per_gpu == 2


def test_no_cap_without_cuda_or_fraction() -> None:
    limit_process_memory(None)
    if not torch.cuda.is_available():
        limit_process_memory(0.25)  # nothing to cap on the CPU


@NEEDS_CUDA
def test_cap_stops_an_allocation_beyond_the_share() -> None:
    total = torch.cuda.get_device_properties(0).total_memory
    limit_process_memory(0.05)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.1), dtype=torch.uint8, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
