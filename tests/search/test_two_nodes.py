"""A search on a Ray cluster of two nodes, both on this machine: its trials land on both and
record which, and a node lost mid-search fails only the trial it ran.

The head is ``ray start --head`` with one CPU; the second node joins it with one CPU, so two
trials of one CPU each run one per node. Both nodes use this module's Ray temp dir (a
joining node shares the head's session folder) and are stopped through their own
``ray start --block`` processes: ``ray stop`` would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from search import report
from search.study.schema import FAIL_REASON, NODE_ID, NODE_IP, NODE_LOST
from tests.search.test_search_e2e import (
    STUDY,
    _env,
    _free_port,
    _own_ray_tmp,
    _search,
    _start,
    _study,
)

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
START_TIMEOUT_S = 120
# The head's GCS declares a silent node dead after 3 missed checks 1 s apart, not Ray's
# default 5 of 3 s: the lost node's trial fails within seconds.
QUICK_HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000",
                       "RAY_health_check_failure_threshold": "3"}
ONE_CPU_EACH = ("--cpus-per-trial", "1", "--no-presets")
# Two trials at once, one per node, each longer than a worker's start (~10 s here): Tune
# hands a finished trial's worker to the next trial, so trials shorter than that would all
# run in the head's first worker while the second node's is still starting.
TRIALS = ("--trials", "2", *ONE_CPU_EACH, "--subset", "1", "--epochs", "2")
# Trials long enough (seconds, not a fraction of one) that a node killed once one runs
# there kills it mid-training, not after it finished; two, one per node.
LONG_TRIALS = ("--trials", "2", *ONE_CPU_EACH, "--subset", "1", "--epochs", "3")


@dataclass(frozen=True)
class Cluster:
    ray_tmp: Path
    address: str
    logs: Path


def _raylet(ray_tmp: Path, resource: str) -> tuple[int, str] | None:
    """(pid, node id) of this temp dir's raylet whose node has the custom ``resource``."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
            if (args[0].endswith("/raylet") and any(str(ray_tmp) in a for a in args)
                    and any(a.startswith("--static_resource_list=") and f"{resource}," in a
                            for a in args)):
                node_id = next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
                return int(cmdline.parent.name), node_id
    return None


def _start_node(cluster: Cluster, name: str, *flags: str) -> subprocess.Popen:
    """``ray start --block`` of a node with one CPU and the custom resource ``name``, once
    the node is up; the test is skipped, saying why, if it does not start."""
    log = cluster.logs / f"{name}.log"
    with log.open("w") as out:
        node = subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
             "--resources", f'{{"{name}": 1}}', "--disable-usage-stats", *flags],
            env={**_env(cluster.ray_tmp), **QUICK_HEALTH_CHECKS}, start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while _raylet(cluster.ray_tmp, name) is None or "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            _stop(node)
            lines = log.read_text().strip().splitlines() or ["no output"]
            pytest.skip(f"ray start of the {name} node failed: {lines[-1]}")
        time.sleep(0.5)
    return node


def _stop(node: subprocess.Popen) -> None:
    """``ray start --block`` stops the node it started on SIGTERM."""
    if node.poll() is None:
        node.terminate()
    node.wait(timeout=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head node (resource ``head``) for the whole module."""
    with _own_ray_tmp() as ray_tmp:
        port = _free_port()
        cluster = Cluster(ray_tmp, f"127.0.0.1:{port}", tmp_path_factory.mktemp("ray-logs"))
        head = _start_node(cluster, "head", "--head", "--port", str(port), "--temp-dir",
                           str(ray_tmp), "--include-dashboard", "false")
        try:
            yield cluster
        finally:
            _stop(head)


@pytest.fixture
def second_node(cluster: Cluster) -> Iterator[int]:
    """A second node (resource ``node2``) joined to the head for one test: its raylet's pid."""
    node = _start_node(cluster, "node2", "--address", cluster.address)
    try:
        found = _raylet(cluster.ray_tmp, "node2")
        assert found is not None
        yield found[0]
    finally:
        _stop(node)


def test_trials_land_on_both_nodes_and_record_which(
        cluster: Cluster, second_node: int, tmp_path: Path) -> None:
    run = _search(tmp_path, cluster.ray_tmp, *TRIALS, "--address", cluster.address)
    assert run.returncode == 0, run.stderr
    complete = _study(tmp_path).get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2
    nodes = {(_raylet(cluster.ray_tmp, name) or (0, "?"))[1] for name in ("head", "node2")}
    assert {t.user_attrs[NODE_ID] for t in complete} == nodes  # both, and only these
    assert all(t.user_attrs[NODE_IP] for t in complete)
    assert report.main(["--study", STUDY, "--results-dir", str(tmp_path), "--no-dashboard"]) == 0
    table = pd.read_csv(tmp_path / STUDY / "trials.csv")
    assert set(table[NODE_ID]) == nodes and table[NODE_IP].notna().all()


def _wait_for_a_trial_under(raylet: int, search: subprocess.Popen) -> None:
    """Until a Tune trial's actor, a child of ``raylet``, is running a trial."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and search.poll() is None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError):
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                title = (stat.parent / "cmdline").read_bytes()
                if ppid == raylet and title.startswith(b"ray::ImplicitFunc.train"):
                    return
        time.sleep(0.2)
    raise AssertionError(f"no trial ran on the second node (search exit {search.poll()})")


def test_a_lost_node_fails_its_trial_only_and_the_rerun_replaces_it(
        cluster: Cluster, second_node: int, tmp_path: Path) -> None:
    search = _start(tmp_path, cluster.ray_tmp, *LONG_TRIALS, "--address", cluster.address)
    try:
        _wait_for_a_trial_under(second_node, search)
        time.sleep(1)  # into its training
        os.kill(second_node, signal.SIGKILL)  # the node's raylet: the node is lost
        out, err = search.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 0, err
    study = _study(tmp_path)
    lost = study.get_trials(states=(TrialState.FAIL,))
    assert len(lost) == 1, [t.user_attrs.get(FAIL_REASON) for t in lost]
    assert lost[0].user_attrs[FAIL_REASON].startswith("node lost: Ray node ")
    assert lost[0].user_attrs[NODE_LOST] is True
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1
    assert "1 trial(s) lost with their Ray node do not count towards --trials" in out

    # The lost trial does not count: the same command trains one in its place.
    rerun = _search(tmp_path, cluster.ray_tmp, *LONG_TRIALS, "--address", cluster.address)
    assert rerun.returncode == 0, rerun.stderr
    assert "1/2 trials done" in rerun.stdout
    assert len(_study(tmp_path).get_trials(states=(TrialState.COMPLETE,))) == 2

