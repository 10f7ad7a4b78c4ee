"""A trial's memory: estimated from sizes alone, declared to Ray, bounded."""

from __future__ import annotations

import os
import sys

import pytest

from cse_nets import build_network, count_parameters
from search.driver import tune
from search.training import TrainConfig
from search.trials.memory import TrialMemory
from search.trials.packing import largest_arch
from search.trials.trainable import TrialResources, memory_request, release_freed_memory
from space import DATASET_SHAPES, PRESETS, InputShape, preset
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


@pytest.mark.parametrize("estimate", [1, 3, 999, 875_000_000, 2**30, 2**30 + 1, 7 * 10**12])
def test_requests_are_rounded_up_onto_a_grid_at_most_19_percent_above(estimate: int) -> None:
    request = memory_request(estimate)
    assert estimate <= request <= estimate * 2 ** 0.25 + 1
    assert memory_request(request) == request  # on the grid already
    assert memory_request(estimate + 1) >= request


def test_similar_networks_ask_alike_and_a_floor_makes_every_space_network_ask_alike() -> None:
    memory = _memory(64)
    mix, mobilenet = preset("paper-mix"), preset("mobilenetv2")
    alone = TrialResources(cpu=1, gpu=0, memory=memory, max_memory=100e9)
    assert memory.estimate(mix) != memory.estimate(mobilenet)
    largest = memory_request(memory.estimate(largest_arch(28)))
    shared = TrialResources(cpu=1, gpu=0, memory=memory, max_memory=100e9, floor=largest)
    assert shared.memory_bytes(mix) == shared.memory_bytes(mobilenet) == largest
    assert alone.memory_bytes(mix) < largest  # no floor: the network's own request
    # A network above the floor (one a user enqueued, outside the space) asks for its own.
    huge = TrialResources(cpu=1, gpu=0, memory=memory, max_memory=100e9, floor=1)
    assert huge.memory_bytes(mix) == alone.memory_bytes(mix)


def _node(cpus: float, memory: float, gpus: float = 0, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpus, "GPU": gpus, "memory": memory}}


@pytest.mark.parametrize(("nodes", "cpus", "gpus", "max_concurrent", "shared"), [
    ([_node(2, 16e9)], 1, 0, None, True),  # this machine at 16 px: 2 x 4.7 GB fit
    ([_node(64, 16e9)], 1, 0, None, False),  # 64 trials at once would not
    ([_node(64, 16e9)], 1, 0, 2, True),  # unless only 2 run at once
    ([_node(64, 16e9)], 32, 0, None, True),
    ([_node(2, 16e9), _node(8, 16e9)], 1, 0, None, False),  # every node must hold its own
    ([_node(2, 16e9), _node(8, 16e9, alive=False)], 1, 0, None, True),
    ([_node(64, 16e9, gpus=1)], 1, 1, None, True),  # one trial per GPU
    ([_node(2, 1e9)], 1, 0, None, False),
])
def test_trials_share_the_largest_request_only_where_no_node_runs_short_of_memory(
        monkeypatch: pytest.MonkeyPatch, nodes: list[dict], cpus: float, gpus: float,
        max_concurrent: int | None, shared: bool) -> None:
    monkeypatch.setattr(tune.ray, "nodes", lambda: nodes)
    memory = TrialMemory(shape=InputShape(3, 16, 16), batch_size=59, eval_batch_size=128,
                         data_bytes=2000 * 768)
    request = tune._shared_memory_request(memory, 16, cpus, gpus, max_concurrent)
    assert request == (memory_request(memory.estimate(largest_arch(16))) if shared else 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_a_worker_over_half_its_request_hands_freed_heap_back() -> None:
    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    # 200 MB of malloc'd blocks, freed but for every 64th: glibc keeps the pages between.
    blocks = [bytearray(4096) for _ in range(50_000)]
    kept = blocks[::64]
    del blocks
    held = resident()
    assert not release_freed_memory(budget=4 * held)  # far under half: no trim, no cost
    assert resident() > held - (50 << 20)
    assert release_freed_memory(budget=held)
    assert resident() < held - (100 << 20)
    del kept
