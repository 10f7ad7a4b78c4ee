"""A trial's memory: estimated from sizes alone, declared to Ray, bounded."""

from __future__ import annotations

import pytest

from cse_nets import build_network, count_parameters
from search.training import TrainConfig
from search.trials.memory import TrialMemory
from search.trials.trainable import TrialResources
from space import DATASET_SHAPES, PRESETS, preset
from space.footprint import network_footprint

FASHION = DATASET_SHAPES["fashion-mnist"]


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("dataset", ["cifar10", "fashion-mnist"])
def test_the_estimate_counts_the_parameters_exactly(name: str, dataset: str) -> None:
    shape = DATASET_SHAPES[dataset]
    network = build_network(PRESETS[name], shape)
    assert network_footprint(PRESETS[name], shape).params == count_parameters(network)


def _memory(batch_size: int) -> TrialMemory:
    # The quick budget on Fashion-MNIST: 57,000 training and validation images of 28x28.
    return TrialMemory(shape=FASHION, batch_size=batch_size,
                       eval_batch_size=TrainConfig().eval_batch_size, data_bytes=57_000 * 784)


def test_each_trial_declares_its_memory_to_ray() -> None:
    resources = TrialResources(cpu=1, gpu=0, memory=_memory(64), max_memory=20e9)
    (bundle,) = resources.placement({"arch": preset("paper-mix").to_json()}).bundles
    # Measured 2.57 GB (benchmarks/bench_trial_memory.py): declared with a margin.
    assert 2.6e9 < bundle["memory"] < 4e9
    assert bundle["CPU"] == 1


def test_a_trial_never_asks_for_more_than_a_node_has() -> None:
    resources = TrialResources(cpu=1, gpu=0, memory=_memory(4096), max_memory=5e9)
    (bundle,) = resources.placement({"arch": preset("mobilenetv2").to_json()}).bundles
    assert bundle["memory"] == 5e9


def test_evaluation_batches_are_small_enough_not_to_be_the_peak() -> None:
    memory = _memory(64)
    footprint = network_footprint(preset("paper-mix"), FASHION)
    assert memory.eval_batch_size <= 128  # 1,024 peaked 1.45 GB above the model
    assert memory.estimate(preset("paper-mix")) > footprint.image_bytes * memory.batch_size
