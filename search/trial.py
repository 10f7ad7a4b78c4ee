"""One trial as Ray runs it: a small coordinator that runs the candidate as a Ray task.

Tune's trial actor only coordinates; the training runs in a Ray task placed in the
trial's placement group, which also declares the trial's memory. A task whose worker
dies (killed by Ray's memory monitor, a segfault, its node lost) fails in the
coordinator as an exception, reported as the trial's failure with the reason, and the
search goes on. Run in the actor itself, the same death raises out of Tune's controller
(Ray's actor manager re-raises any error that is not an actor or task error) and takes
the whole search down.

Failed trials are not retried: the death of a trial is recorded with its cause, and the
declared memory, not a retry with fewer neighbours, keeps trials from crowding each
other out (Tune's concurrency cannot shrink mid-run).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
import ray.exceptions
from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory

from cse_nets.cli import first_line
from search.data import Splits
from search.memory import TrialMemory
from search.objectives import Objective
from search.searcher import ARCH_KEY, ATTRS_KEY, FAIL_KEY
from search.train import TrainConfig
from space import Arch

__all__ = ["COORDINATOR_BYTES", "TrialResources", "run_trial", "worker_death_reason"]

COORDINATOR_BYTES = 400_000_000  # the trial actor: a Ray worker with this package imported


@dataclass(frozen=True)
class TrialResources:
    """What a trial asks Ray for: CPUs and GPUs, and memory from its architecture."""

    cpu: float
    gpu: float
    memory: TrialMemory
    max_memory: float  # the most one trial may ask for (the largest node's memory)

    def memory_bytes(self, arch_json: str) -> int:
        """The estimate, capped so a large candidate runs alone instead of never."""
        return int(min(self.memory.estimate(Arch.from_json(arch_json)),
                       self.max_memory - COORDINATOR_BYTES))

    def placement(self, config: dict[str, Any]) -> PlacementGroupFactory:
        """Tune's per-trial resources: the coordinator, then the training task's bundle."""
        work = {"CPU": self.cpu, "GPU": self.gpu, "memory": self.memory_bytes(config[ARCH_KEY])}
        return PlacementGroupFactory([{"memory": COORDINATOR_BYTES}, work])


@ray.remote(max_retries=0)
def _evaluate(splits: Splits, arch_json: str, train_config: TrainConfig,
              objectives: Sequence[Objective]) -> dict[str, Any]:
    """The candidate's metrics and attributes, or its failure reason; never raises for it."""
    from search.objective import train_and_score  # torch: only in the task's worker

    names = [o.metric for o in objectives]
    try:
        evaluation = train_and_score(Arch.from_json(arch_json), splits, train_config, objectives)
    except Exception as err:  # NaN loss, out of memory, unbuildable: the trial's FAIL
        # Tune insists on the metrics in every result; StudySearch tells Optuna FAIL.
        return {**dict.fromkeys(names, math.nan), FAIL_KEY: f"{type(err).__name__}: "
                                                            f"{first_line(err)}"}
    metrics = dict(zip(names, evaluation.values(objectives), strict=True))
    return {**metrics, ATTRS_KEY: json.dumps(evaluation.user_attrs())}


_WORKER_USED = re.compile(r"memory used=([\d.]+\s*[KMGT]?B)")
_NODE_USED = re.compile(r"was ([\d.]+\s*[KMGT]?B) used / ([\d.]+\s*[KMGT]?B) limit")


def worker_death_reason(err: ray.exceptions.RayError) -> str:
    """Why a trial's worker died, in one line for its ``fail_reason``."""
    text = str(err)
    if isinstance(err, ray.exceptions.OutOfMemoryError):
        worker, node = _WORKER_USED.search(text), _NODE_USED.search(text)
        used = f": worker used {worker.group(1)}" if worker else ""
        where = f" (node at {node.group(1)} of {node.group(2)})" if node else ""
        return f"killed by Ray's memory monitor{used}{where}"
    if isinstance(err, ray.exceptions.NodeDiedError):
        return f"its Ray node was lost: {first_line(err)}"
    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return "its Ray worker died (a crash or a kill, e.g. a segfault or SIGKILL)"
    return f"{type(err).__name__}: {first_line(err)}"


def run_trial(config: dict[str, Any], *, splits: list[ray.ObjectRef],
              train_config: TrainConfig, objectives: Sequence[Objective],
              resources: TrialResources) -> None:
    """The Tune trainable: run the candidate as a task, report once, never raise for it.

    ``splits`` is ``[reference]``: in a list, ``tune.with_parameters`` hands over the
    object store reference instead of a copy of the dataset in this coordinator.
    """
    task = _evaluate.options(num_cpus=resources.cpu, num_gpus=resources.gpu,
                             memory=resources.memory_bytes(config[ARCH_KEY]))
    try:
        result = ray.get(task.remote(splits[0], config[ARCH_KEY], train_config, objectives))
    except ray.exceptions.RayError as err:  # the task's worker died
        result = {**{o.metric: math.nan for o in objectives}, FAIL_KEY: worker_death_reason(err)}
    tune.report(result)
