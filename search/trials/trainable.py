"""One trial as Ray runs it: its resources, its trainable, and what its death means.

A trial asks Ray for its CPUs, GPUs and its estimated memory (:mod:`search.trials.memory`), so
Ray starts no more trials than fit. A trial whose worker dies (killed by Ray's memory
monitor, a segfault, its node lost) is that trial's failure, recorded with the cause, and
the search goes on. Ray 2.60's actor manager raises any death other than an actor or task
error (``OutOfMemoryError``, ``WorkerCrashedError``, ``NodeDiedError``) out of Tune's
controller, which takes the whole search down: the driver's
:func:`search.driver.worker_deaths.surviving_worker_deaths` routes them the way it routes an
actor's death while Tune runs.

Such a trial is not retried: Tune cannot lower its concurrency mid-run, so a retry would
meet the same neighbours; the declared memory is what keeps trials from crowding each
other out, and a rerun of the command gets the budget's remaining trials.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory

from cse_nets.cli import first_line
from search.study.objectives import Objective
from search.study.schema import (
    ARCH_KEY,
    ATTRS_KEY,
    EPOCH_KEY,
    FAIL_KEY,
    NODE_ID,
    NODE_IP,
    PARTIAL_KEY,
)
from search.training import TrainConfig
from search.training.evaluate import Evaluation, train_and_score
from search.training.step import Speedups
from search.trials.memory import TrialMemory
from search.trials.packing import limit_process_memory
from search.trials.shared_data import SharedData, splits_on
from space import Arch

__all__ = ["TrialResources", "memory_request", "report_evaluation", "run_trial"]

# Tune hands a finished trial's worker to the next trial only if that one asks for exactly
# the same resources; otherwise it starts a new process, ~9 s of CPU (torch, Ray Tune and
# torch._dynamo imported) before the trial trains. With requests rounded up to steps of
# 2^(1/4), trials of similar size share workers; a request exceeds its estimate by < 19%.
MEMORY_STEPS_PER_DOUBLING = 4


def memory_request(estimate: int) -> int:
    """``estimate`` bytes rounded up to the next step of the grid 2^(k/4)."""
    # From a step below the answer up: log2's rounding cannot then skip the smallest one.
    step = math.floor(math.log2(max(estimate, 1)) * MEMORY_STEPS_PER_DOUBLING) - 1
    while (request := math.ceil(2 ** (step / MEMORY_STEPS_PER_DOUBLING))) < estimate:
        step += 1
    return request


@dataclass(frozen=True)
class TrialResources:
    """What a trial asks Ray for: CPUs and GPUs, and memory from its architecture."""

    cpu: float
    gpu: float
    memory: TrialMemory
    max_memory: float  # the most one trial may ask for: the largest node's memory resource
    # What every trial asks for at least (0: nothing): the space's largest network's request,
    # where each node holds as many of those as it runs at once, so all trials ask alike and
    # Tune reuses every worker (search.driver.tune decides).
    floor: int = 0

    def memory_bytes(self, arch: Arch) -> int:
        """The estimate on a coarse grid (at least ``floor``), capped so that a large
        candidate runs alone rather than never."""
        request = max(self.floor, memory_request(self.memory.estimate(arch)))
        return int(min(request, self.max_memory))

    def placement(self, config: dict[str, Any]) -> PlacementGroupFactory:
        """Tune's resources for the trial of ``config``."""
        memory = self.memory_bytes(Arch.from_json(config[ARCH_KEY]))
        return PlacementGroupFactory([{"CPU": self.cpu, "GPU": self.gpu, "memory": memory}])


def run_trial(config: dict[str, Any], *, data: SharedData, train_config: TrainConfig,
              objectives: Sequence[Objective], speedups: Speedups,
              memory_fraction: float | None) -> None:
    """The Tune trainable: one candidate, reported after every epoch, never raising for its
    own failure.

    Each epoch's report holds the objective values so far (a scheduler may stop the trial
    there) and ``epoch``; the last also holds the user attrs, the others the same so far.
    ``memory_fraction`` is the trial's share of a GPU it shares with others
    (:mod:`search.trials.packing`); PyTorch's allocator is capped at it."""
    def epoch_done(evaluation: Evaluation) -> None:
        if len(evaluation.val_accuracy_per_epoch) < train_config.epochs:
            report_evaluation(evaluation, objectives, final=False)

    try:
        limit_process_memory(memory_fraction)
        splits = splits_on(data, train_config.device)
        evaluation = train_and_score(Arch.from_json(config[ARCH_KEY]), splits, train_config,
                                     objectives, on_epoch=epoch_done, speedups=speedups)
    except Exception as err:  # NaN loss, out of memory, unbuildable: the trial's FAIL
        # Tune insists on the metrics in every result; StudySearch tells Optuna FAIL.
        reason = f"{type(err).__name__}: {first_line(err)}"
        if memory_fraction is not None and isinstance(err, torch.OutOfMemoryError):
            reason = f"out of memory in its own {memory_fraction:.1%} of the GPU: {reason}"
        tune.report({**dict.fromkeys((o.metric for o in objectives), math.nan),
                     FAIL_KEY: reason})
        return
    finally:
        release_freed_memory()
    report_evaluation(evaluation, objectives, final=True)


def release_freed_memory(budget: float | None = None) -> bool:
    """Hand the heap freed by finished trials back to the OS once the worker's resident
    memory passes half of ``budget`` bytes (default: the trial's memory request to Ray);
    whether it did.

    The worker runs the next trials (Tune's ``reuse_actors``); glibc keeps freed heap, so
    without this the worker's resident memory climbs with every trial it runs, past what
    its trials asked Ray for (a smoke search on this machine: 0.7 GB -> 4.3 GB over 40
    trials). A trim costs ~0.25 s (a full garbage collection, then the pages faulted in
    again), so small trials, far under their request, skip it.
    """
    if budget is None:
        budget = tune.get_context().get_trial_resources().required_resources.get("memory")
    resident = _resident_bytes()
    if not budget or resident is None or resident <= budget / 2:
        return False
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return True


def _resident_bytes() -> int | None:
    """This process's resident memory, where Linux's /proc tells it."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def report_evaluation(evaluation: Evaluation, objectives: Sequence[Objective], *,
                      final: bool) -> None:
    """Report a candidate to Tune after an epoch: objective values so far, ``epoch``, and
    the user attrs (``final``) or the same so far (:class:`search.driver.searcher.StudySearch`
    reads them), with the Ray node the trial runs on. From inside a trainable only."""
    attrs = {**evaluation.user_attrs(), **_node_attrs()}
    tune.report({**dict(zip((o.metric for o in objectives), evaluation.values(objectives),
                            strict=True)),
                 EPOCH_KEY: len(evaluation.val_accuracy_per_epoch),
                 ATTRS_KEY if final else PARTIAL_KEY: json.dumps(attrs)})


def _node_attrs() -> dict[str, str]:
    """The Ray node this trial runs on: on a cluster, where to look when a node misbehaves
    (nodes of one machine share an IP; the id tells them apart)."""
    return {NODE_IP: ray.util.get_node_ip_address(),
            NODE_ID: ray.get_runtime_context().get_node_id()}
