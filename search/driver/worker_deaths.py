"""What a trial's dead worker means, and a search that survives it.

A trial whose worker dies (killed by Ray's memory monitor, a segfault, its node lost) is
that trial's failure, recorded with the cause, and the search goes on. Ray 2.60's actor
manager raises any death other than an actor or task error (``OutOfMemoryError``,
``WorkerCrashedError``, ``NodeDiedError``) out of Tune's controller, which takes the whole
search down: :func:`surviving_worker_deaths` routes them the way it routes an actor's death.

Ray offers no public way to do so: the ``RuntimeError`` leaves ``TuneController.step``
before any ``tune.Callback`` hears of the trial, and ``FailureConfig`` retries only
failures Tune has recorded. So the patch of Ray's private method is kept here, applied
only while Tune runs, and ``tests/search/test_worker_deaths.py`` fails when the method
changes shape.

Such a trial is not retried: Tune cannot lower its concurrency mid-run, so a retry would
meet the same neighbours; the declared memory is what keeps trials from crowding each
other out, and a rerun of the command gets the budget's remaining trials. A trial lost
with its node (``node lost: ...``) is the cluster's failure, not its architecture's: it
is marked :data:`~search.study.schema.NODE_LOST` and does not count towards the budget,
so that rerun also trains one in its place.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray.exceptions
from ray import cloudpickle, tune
from ray.air.execution._internal.actor_manager import RayActorManager

from cse_nets.cli import first_line
from search.study.schema import CRASH_REASON, NODE_LOST_REASON

__all__ = ["WORKER_DEATHS", "FailureReasons", "WorkerDied", "surviving_worker_deaths",
           "worker_death_reason"]

WORKER_DEATHS = (ray.exceptions.OutOfMemoryError, ray.exceptions.WorkerCrashedError,
                 ray.exceptions.NodeDiedError)


# The raylet's memory-monitor text, read only where the type says nothing: the figures
# (OutOfMemoryError carries none but its message) and an error Tune kept only as text.
# Ray up to 2.54 writes "Task was killed due to the node running low on memory" and "memory
# used=1.25GB"; from 2.55 (the installed 2.60 checked) "<n> worker(s) were killed due to
# ...", "actual memory used=1.25GB" and "was 14.7GB used / 15.4GB limit". A changed text
# loses the reason its figures; its cause is the type's wherever Tune kept the error.
_OOM_KILL = "killed due to the node running low on memory"
_WORKER_USED = re.compile(r"memory used=([\d.]+\s*[KMGT]?B)")
_NODE_USED = re.compile(r"was ([\d.]+\s*[KMGT]?B) used / ([\d.]+\s*[KMGT]?B) limit")
# A trial's actor whose node died (its raylet killed, the machine gone) dies with an
# ActorDiedError, whose type says no more than any actor death's; its text (2.60 checked)
# says "The actor died because its node has died. Node Id: <hex>".
# How long a bare worker death waits for Ray to say whether its node died with it: a
# crash that is no node loss (rare) holds the driver that long.
NODE_DEATH_WAIT_S = 30.0
WORKER_DIED_REASON = "its Ray worker died (a crash or a kill: a segfault, SIGKILL, a lost node)"
_NODE_DIED = re.compile(r"its node has died\. Node Id: ([0-9a-f]+)")


def worker_death_reason(err: BaseException | str | None) -> str:
    """Why a trial's worker died, in one line for its ``fail_reason``; ``err`` may also be
    the text Tune kept of an error it could not pickle. A lost node's reason starts with
    :data:`~search.study.schema.NODE_LOST_REASON`."""
    if isinstance(err, WorkerDied):
        return str(err)
    text = str(err)
    if isinstance(err, ray.exceptions.OutOfMemoryError) or _OOM_KILL in text:
        worker, node = _WORKER_USED.search(text), _NODE_USED.search(text)
        used = f": worker used {worker.group(1)}" if worker else ""
        where = f" (node at {node.group(1)} of {node.group(2)})" if node else ""
        return f"killed by Ray's memory monitor{used}{where}"
    node = _NODE_DIED.search(text)
    if node is not None:
        return node_lost_reason(node.group(1))
    if isinstance(err, ray.exceptions.NodeDiedError):
        return f"{NODE_LOST_REASON}: {first_line(err)}"
    if isinstance(err, ray.exceptions.WorkerCrashedError | ray.exceptions.RayActorError):
        return WORKER_DIED_REASON
    return CRASH_REASON


def node_lost_reason(node_id: str) -> str:
    """The reason of a trial whose worker died with the Ray node ``node_id``."""
    return f"{NODE_LOST_REASON}: Ray node {node_id} died while the trial ran on it"


def _last_error(trial: Any) -> BaseException | str | None:
    """The error Tune just wrote for ``trial`` in the driver's staging folder (it reaches
    the trial folder later): pickled for actor and task errors, else as text."""
    if trial is None:
        return None
    pickled, text = trial.pickled_error_file, trial.error_file
    if pickled and Path(pickled).is_file():
        return cloudpickle.loads(Path(pickled).read_bytes())
    if text and Path(text).is_file():
        return Path(text).read_text()
    return None


class FailureReasons(tune.Callback):
    """The cause of each trial that erred outside the objective, for :class:`StudySearch`
    (Tune tells the searcher of the error, but not what it was)."""

    def __init__(self) -> None:
        self._trials: dict[str, Any] = {}
        self._dead_at_start: set[str] | None = None

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        # Every step, not on_trial_start: a worker can die before its trial starts.
        self._trials.update((trial.trial_id, trial) for trial in trials)
        if self._dead_at_start is None:
            self._dead_at_start = _dead_nodes()

    def reason(self, trial_id: str) -> str:
        """Read from the error Tune stored for the trial just before it told the searcher."""
        try:
            error = _last_error(self._trials.get(trial_id))
        except Exception:  # an unreadable error file: the generic reason will do
            error = None
        reason = worker_death_reason(error)
        if reason == WORKER_DIED_REASON:
            # Ray reports a worker that died with its node either as the node's death or,
            # when the actor's failure reaches Tune first, as a bare actor death. A node
            # that died during this search then explains it (a crash at the very moment
            # another node is lost would be misnamed; that is the price of not guessing).
            # The actor's death can reach Tune before Ray's health checks declare its node
            # dead (about 15 s by Ray's defaults), so a bare death waits for that verdict.
            deadline = time.monotonic() + NODE_DEATH_WAIT_S
            while True:
                lost = sorted(_dead_nodes() - (self._dead_at_start or set()))
                if lost:
                    return node_lost_reason(lost[0])
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
        return reason

    # Tune pickles its searcher (which holds ``reason``); a copy needs no live trials.
    def __getstate__(self) -> dict[str, Any]:
        return {"_trials": {}, "_dead_at_start": self._dead_at_start}


def _dead_nodes() -> set[str]:
    """The ids of the cluster's nodes that are no longer alive (none without Ray)."""
    if not ray.is_initialized():
        return set()
    return {node["NodeID"] for node in ray.nodes() if not node["Alive"]}


class WorkerDied(ray.exceptions.RayActorError):
    """A trial's worker died of one of :data:`WORKER_DEATHS`; ``str()`` is the cause."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(error_msg=reason)


@contextlib.contextmanager
def surviving_worker_deaths() -> Iterator[None]:
    """Within the block, Tune treats :data:`WORKER_DEATHS` of a trial's task as its actor's
    death; Ray's own method is back when the block ends, however it ends.

    A workaround for Ray's actor manager (pinned ray<3): such a death reaches it as a
    :class:`WorkerDied`, an actor error, which Tune records as the trial's error.
    """
    original = RayActorManager._actor_task_failed

    def task_failed(self: RayActorManager, tracked_actor_task: Any,
                    exception: Exception) -> None:
        if isinstance(exception, WORKER_DEATHS):
            exception = WorkerDied(worker_death_reason(exception))
        original(self, tracked_actor_task, exception)

    RayActorManager._actor_task_failed = task_failed  # type: ignore[method-assign]
    try:
        yield
    finally:
        RayActorManager._actor_task_failed = original  # type: ignore[method-assign]
