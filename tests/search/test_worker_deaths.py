"""The patch of Ray's actor manager: the method it wraps still has the shape it expects, it
holds only inside its ``with`` block, and a worker's death becomes its trial's error."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import ray.exceptions
from ray.air.execution._internal.actor_manager import RayActorManager

from search.driver.worker_deaths import WorkerDied, surviving_worker_deaths, worker_death_reason


def test_rays_private_method_has_the_shape_the_patch_wraps() -> None:
    # Fails when a Ray upgrade renames or reshapes it: then the patch needs a new look.
    method = getattr(RayActorManager, "_actor_task_failed", None)
    assert callable(method)
    assert list(inspect.signature(method).parameters) == [
        "self", "tracked_actor_task", "exception"]


def test_the_patch_holds_only_inside_the_block() -> None:
    original = RayActorManager._actor_task_failed
    with surviving_worker_deaths():
        assert RayActorManager._actor_task_failed is not original
    assert RayActorManager._actor_task_failed is original
    with pytest.raises(RuntimeError, match="search failed"), surviving_worker_deaths():
        raise RuntimeError("search failed")
    assert RayActorManager._actor_task_failed is original


def _failed_task(exception: Exception) -> list[Exception]:
    """What the trial's error callback receives when its task fails with ``exception``."""
    errors: list[Exception] = []
    actor = SimpleNamespace(actor_id="a", _on_error=None)
    task = SimpleNamespace(_tracked_actor=actor,
                           _on_error=lambda _actor, error: errors.append(error))
    manager = SimpleNamespace(_failed_actor_ids=set(), _cleanup_actor=lambda tracked_actor: None)
    RayActorManager._actor_task_failed(manager, task, exception)  # type: ignore[arg-type]
    return errors


def test_a_worker_death_becomes_the_trials_error_inside_the_block_only() -> None:
    with surviving_worker_deaths():
        errors = _failed_task(ray.exceptions.WorkerCrashedError())
    assert len(errors) == 1 and isinstance(errors[0], WorkerDied)
    assert "its Ray worker died" in str(errors[0])
    with pytest.raises(RuntimeError, match="unexpected exception"):  # Ray's own behaviour
        _failed_task(ray.exceptions.WorkerCrashedError())


@pytest.mark.parametrize("message", [
    # Ray up to 2.54
    "Task was killed due to the node running low on memory.\nMemory on the node (IP: x) "
    "where the task (task ID: t, name=f, pid=1, memory used=1.25GB) was running",
    # Ray 2.55 and later
    "1 worker(s) were killed due to the node running low on memory. Memory on the node "
    "(IP: x, ID: y) was 14.7GB used / 15.4GB limit (0.95) (pid=1, actual memory "
    "used=1.25GB, worker ID=w)",
])
def test_the_memory_monitors_text_names_the_cause_and_its_figures(message: str) -> None:
    reason = worker_death_reason(message)  # as Tune keeps an error it cannot pickle
    assert reason.startswith("killed by Ray's memory monitor: worker used 1.25GB")
    assert worker_death_reason(ray.exceptions.OutOfMemoryError(message)) == reason


NODE_DIED = ("The actor died unexpectedly before finishing this task.\n\tclass_name: "
             "ImplicitFunc\n\tip: 10.0.0.2\nThe actor died because its node has died. Node "
             "Id: c2fa4a4fb698\n\tthe actor's node was terminated unexpectedly: health check "
             "failed due to missing too many heartbeats")


@pytest.mark.parametrize("error", [
    ray.exceptions.RayActorError(error_msg=NODE_DIED),  # what Ray 2.60 raises
    NODE_DIED,  # as Tune keeps an error it cannot pickle
])
def test_a_lost_node_says_node_lost_and_which(error: object) -> None:
    assert worker_death_reason(error) == (
        "node lost: Ray node c2fa4a4fb698 died while the trial ran on it")


def test_a_node_died_error_says_node_lost() -> None:
    reason = worker_death_reason(ray.exceptions.NodeDiedError("node 10.0.0.2 died"))
    assert reason == "node lost: node 10.0.0.2 died"
