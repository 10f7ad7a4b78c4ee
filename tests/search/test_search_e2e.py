"""``python -m search.run`` end to end on the synthetic dataset: real Ray, real training.

Every search runs as a subprocess with its own Ray temp dir (``RAY_TMPDIR``), which every
Ray process it starts carries in its command line: that is how the tests check that no
Ray process outlives a search, and how they clean up only their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.study.schema import CACHED_FROM, INTERRUPTED, OVER_MAX_PARAMS
from space import Arch, preset

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY = "synthetic-smoke"
MAX_PARAMS = 600_000
# Tiny and stable: 16x16 inputs, 180 training images, one epoch, a learning rate that
# does not diverge for the presets.
SEARCH = [sys.executable, "-m", "search.run", "--dataset", "synthetic", "--budget", "smoke",
          "--input-size", "16", "--subset", "0.1", "--epochs", "1", "--batch-size", "32",
          "--lr", "0.05", "--val-fraction", "0.1", "--sampler", "random"]
RAY_GONE_TIMEOUT_S = 90  # a worker still starting up takes ~30 s to notice its raylet died


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_pids(ray_tmp: Path) -> list[int]:
    marker = str(ray_tmp).encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if marker in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
    return pids


@contextlib.contextmanager
def _own_ray_tmp() -> Iterator[Path]:
    """A short temp dir (Ray's socket paths must fit in 107 bytes); no Ray process of it
    may survive the block."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    try:
        yield path
        deadline = time.monotonic() + RAY_GONE_TIMEOUT_S
        while (left := _ray_pids(path)) and time.monotonic() < deadline:
            time.sleep(1)
        assert not left, f"Ray processes left behind: {left}"
    finally:
        for pid in _ray_pids(path):  # only after a failure: this test's own processes
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def _env(ray_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "disabled"}


def _search(results: Path, ray_tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEARCH, "--results-dir", str(results), *flags], env=_env(ray_tmp),
                          capture_output=True, text=True, timeout=600, check=False)


def _study(where: Path | str | optuna.storages.BaseStorage) -> optuna.Study:
    """The search's study: in a results folder's SQLite file, or in a given storage."""
    storage = f"sqlite:///{where / STUDY}.db" if isinstance(where, Path) else where
    return optuna.load_study(study_name=STUDY, storage=storage)


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE,))


def _presets(study: optuna.Study) -> list[str]:
    return sorted(t.user_attrs["preset"] for t in study.trials if "preset" in t.user_attrs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = tmp_path_factory.mktemp("results")
    with _own_ray_tmp() as ray_tmp:
        # paper-mix enqueued twice: the second is served from the cache (one at a time, so
        # the first has finished). Random draws at 16 px are mostly over the cap;
        # MobileNetV2 is too.
        run = _search(results, ray_tmp, "--trials", "4", "--max-concurrent", "1",
                      "--presets", "paper-mix,paper-mix,mobilenetv2",
                      "--max-params", str(MAX_PARAMS))
    assert run.returncode == 0, run.stderr
    return results, run.stdout


def _trained(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in _complete(study) if CACHED_FROM not in t.user_attrs]


def test_search_stores_complete_trials_and_presets(finished: tuple[Path, str]) -> None:
    results, stdout = finished
    study = _study(results)
    trained = _trained(study)
    assert len(trained) == 4
    assert all(len(t.values) == 2 and 0 <= t.values[0] <= 1 for t in _complete(study))
    assert study.metric_names == ["val_accuracy", "params"]
    assert study.user_attrs["input_shape"] == [3, 16, 16]
    assert study.user_attrs["train_config"]["epochs"] == 1
    archs = {t.number: Arch.from_json(t.user_attrs["arch"]) for t in trained}
    for trial in trained:
        assert trial.values[1] == trial.user_attrs["params"]
        assert len(trial.user_attrs["val_accuracy_per_epoch"]) == 1
        assert {"macs", "train_seconds", "wall_seconds", "device", "seed", "versions",
                "arch_str"} <= set(trial.user_attrs)
    by_preset = {t.user_attrs["preset"]: archs[t.number] for t in trained
                 if "preset" in t.user_attrs}
    assert by_preset == {"paper-mix": preset("paper-mix"), "mobilenetv2": preset("mobilenetv2")}
    assert "[4/4] trials done" in stdout
    assert "Pareto front (" in stdout and str(results / STUDY) in stdout


def test_a_duplicate_is_served_without_a_ray_trial(finished: tuple[Path, str]) -> None:
    results, stdout = finished
    study = _study(results)
    first, duplicate = study.trials[:2]  # paper-mix, twice
    assert [t.state for t in (first, duplicate)] == [TrialState.COMPLETE] * 2
    assert duplicate.user_attrs[CACHED_FROM] == first.number
    assert duplicate.values == first.values
    assert duplicate.user_attrs["train_seconds"] == 0.0 < first.user_attrs["train_seconds"]
    assert duplicate.user_attrs["wall_seconds"] < 1.0
    assert [t.number for t in _complete(study) if CACHED_FROM in t.user_attrs] == [1]
    # Ray ran the 4 trainings only: neither the duplicate nor a pruned proposal reached a
    # worker.
    (experiment,) = (results / "ray" / STUDY).iterdir()
    assert len([p for p in experiment.iterdir() if p.is_dir()]) == 4
    assert "trials done (0 failed), 1 duplicate(s) served from the cache" in stdout


def test_proposals_over_max_params_are_pruned_untrained(finished: tuple[Path, str]) -> None:
    results, stdout = finished
    study = _study(results)
    sampled = [t for t in _complete(study) if "preset" not in t.user_attrs]
    assert len(sampled) == 2 and all(t.values[1] <= MAX_PARAMS for t in sampled)
    # The presets are the paper's baselines: trained whatever their size.
    assert max(t.values[1] for t in _complete(study)) > MAX_PARAMS
    oversized = study.get_trials(states=(TrialState.PRUNED,))
    assert oversized, "no random draw over the cap: the test shows nothing"
    for trial in oversized:
        assert trial.user_attrs[OVER_MAX_PARAMS] == MAX_PARAMS
        assert trial.user_attrs["params"] > MAX_PARAMS
        assert "val_accuracy_per_epoch" not in trial.user_attrs  # never trained
    assert f"no network over {MAX_PARAMS:,} params" in stdout
    assert f"{len(oversized)} over --max-params not trained" in stdout


def test_optuna_dashboard_lists_the_study(finished: tuple[Path, str]) -> None:
    results, _ = finished
    port = _free_port()
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).parent / "optuna-dashboard"), f"sqlite:///{results / STUDY}.db",
         "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        studies = _get_json(f"http://127.0.0.1:{port}/api/studies", timeout_s=60)
        [summary] = studies["study_summaries"]
        assert summary["study_name"] == STUDY
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")
        states = [t["state"] for t in detail["trials"]]
        assert states.count("Complete") == 5 and set(states) == {"Complete", "Pruned"}
        assert detail["objective_names"] == ["val_accuracy", "params"]
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)


def _get_json(url: str, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_sigkill_then_rerun_finishes_the_budget(tmp_path: Path) -> None:
    # The killed search's Ray must be gone too, but only by the end of the rerun: its
    # orphans take ~25 s to notice, time the rerun need not wait for.
    with _own_ray_tmp() as killed_ray_tmp:
        search = subprocess.Popen(
            [*SEARCH, "--results-dir", str(tmp_path), "--trials", "5", "--max-concurrent", "1"],
            env=_env(killed_ray_tmp), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_running_after_complete(tmp_path, 2, search)
        finally:
            os.killpg(search.pid, signal.SIGKILL)  # the driver and all it started
            search.wait(timeout=60)
        killed = _study(tmp_path)
        before = _complete(killed)
        running = [t.number for t in killed.get_trials(states=(TrialState.RUNNING,))]
        assert running and len(before) < 5

        with _own_ray_tmp() as ray_tmp:
            rerun = _search(tmp_path, ray_tmp, "--trials", "5", "--max-concurrent", "1")
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {len(running)} interrupted trial(s) marked FAIL" in rerun.stdout
    study = _study(tmp_path)
    complete = _complete(study)
    assert len(complete) == 5
    after = {t.number: (t.values, t.datetime_complete) for t in complete}
    assert all(after[t.number] == (t.values, t.datetime_complete) for t in before)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == running
    assert all(t.user_attrs[INTERRUPTED] for t in failed)
    assert _presets(study) == ["mobilenetv2", "paper-mix"]  # enqueued once, not on resume


def _wait_until_running_after_complete(where: Path | optuna.storages.BaseStorage, count: int,
                                       search: subprocess.Popen) -> None:
    """Until ``count`` trials are complete (or pruned) and another one is running."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and search.poll() is None:
        with contextlib.suppress(KeyError, optuna.exceptions.StorageInternalError):
            states = [t.state for t in _study(where).trials]
            done = states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED)
            if done >= count and TrialState.RUNNING in states:
                return
        time.sleep(0.2)
    raise AssertionError(f"no {count} complete trials and a running one "
                         f"(search exit status {search.poll()})")


def test_sigkill_during_mo_asha_then_rerun_reaches_the_budget_losing_nothing(
        tmp_path: Path) -> None:
    flags = ("--trials", "6", "--max-concurrent", "1", "--epochs", "3", "--scheduler",
             "mo-asha", "--min-epochs", "1", "--reduction-factor", "3", "--no-presets")
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    with _own_ray_tmp() as killed_ray_tmp:  # gone by the end of the rerun, as above
        search = _start(tmp_path, killed_ray_tmp, *flags)
        try:
            _wait_until_running_after_complete(tmp_path, 3, search)
        finally:
            os.killpg(search.pid, signal.SIGKILL)
            search.wait(timeout=60)
        killed = _study(tmp_path)
        before = {t.number: (t.state, t.values, t.user_attrs, t.datetime_complete)
                  for t in killed.get_trials(states=finished)}
        running = [t.number for t in killed.get_trials(states=(TrialState.RUNNING,))]
        assert running and 3 <= len(before) < 6

        with _own_ray_tmp() as ray_tmp:
            rerun = _search(tmp_path, ray_tmp, *flags)
    assert rerun.returncode == 0, rerun.stderr
    assert f"mo-asha: rungs rebuilt from {len(before)} earlier trial(s)" in rerun.stdout
    study = _study(tmp_path)
    after = study.get_trials(states=finished)
    assert len(after) == 6  # the budget, pruned trials counted as Optuna's pruners count
    assert {t.number: (t.state, t.values, t.user_attrs, t.datetime_complete)
            for t in after if t.number in before} == before  # nothing lost or redone
    new = [t for t in study.trials if t.number > max([*before, *running])]
    assert len(new) == 6 - len(before)  # nothing repeated
    assert all(t.user_attrs[INTERRUPTED] for t in study.get_trials(states=(TrialState.FAIL,)))
    assert any(t.state == TrialState.PRUNED for t in after)


def test_search_runs_on_a_ray_head_node(tmp_path: Path) -> None:
    port = _free_port()
    with _own_ray_tmp() as ray_tmp:
        head = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
             "--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", str(ray_tmp),
             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
            env=_env(ray_tmp), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            run = _search(tmp_path, ray_tmp, "--trials", "3", "--address", f"127.0.0.1:{port}",
                          "--objectives", "accuracy,params,macs", "--no-presets")
        finally:
            head.terminate()  # `ray start --block` stops the node it started on SIGTERM
            head.wait(timeout=120)
    assert run.returncode == 0, run.stderr
    study = _study(tmp_path)
    assert study.metric_names == ["val_accuracy", "params", "macs"]
    complete = _complete(study)
    assert len(complete) == 3
    assert all(t.values[2] == t.user_attrs["macs"] for t in complete)
    assert _presets(study) == []


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    with _own_ray_tmp() as ray_tmp:
        # At a learning rate of a million the loss of paper-mix (PReLU, unbounded) turns NaN;
        # MobileNetV2's ReLU6 and BatchNorm keep its loss finite, if useless.
        run = _search(tmp_path, ray_tmp, "--trials", "3", "--lr", "1e6")
        assert run.returncode == 0, run.stderr
        # The study remembers its settings: a rerun with other ones is refused.
        other = _search(tmp_path, ray_tmp, "--trials", "3")
    assert other.returncode == 2
    assert other.stderr.startswith("error: ") and "train_config" in other.stderr
    trials = {t.user_attrs.get("preset", t.number): t for t in _study(tmp_path).trials}
    assert len(trials) == 3
    assert all(t.state.is_finished() for t in trials.values())
    assert trials["paper-mix"].state == TrialState.FAIL
    assert trials["paper-mix"].user_attrs["fail_reason"].startswith("NonFiniteLossError: ")
    assert trials["mobilenetv2"].state == TrialState.COMPLETE  # after paper-mix failed
    assert "[3/3] trials done" in run.stdout


def test_resources_the_cluster_lacks_are_bad_input(tmp_path: Path) -> None:
    with _own_ray_tmp() as ray_tmp:
        run = _search(tmp_path, ray_tmp, "--trials", "2", "--cpus-per-trial", "1000")
    assert run.returncode == 2
    assert run.stderr.startswith("error: a trial asks for 1000 CPU(s)")
    assert run.stderr.count("\n") == 1


def _start(results: Path, ray_tmp: Path, *flags: str,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    """A search in its own process group (a terminal's Ctrl-C reaches the whole group)."""
    return subprocess.Popen([*SEARCH, "--results-dir", str(results), *flags],
                            env=env or _env(ray_tmp), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_running(results: Path, search: subprocess.Popen, preset_name: str | None = None,
                      ) -> None:
    """Until a trial (of ``preset_name``, if given) is RUNNING in the study."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and search.poll() is None:
        with contextlib.suppress(KeyError, optuna.exceptions.StorageInternalError):
            running = _study(results).get_trials(states=(TrialState.RUNNING,))
            if any(preset_name in (None, t.user_attrs.get("preset")) for t in running):
                return
        time.sleep(0.2)
    raise AssertionError(f"no running trial (search exit status {search.poll()})")


def test_a_second_driver_on_the_study_is_refused_and_the_first_finishes(tmp_path: Path) -> None:
    with _own_ray_tmp() as ray_tmp:
        first = _start(tmp_path, ray_tmp, "--trials", "3", "--max-concurrent", "1")
        try:
            _wait_for_running(tmp_path, first)
            second = _search(tmp_path, ray_tmp, "--trials", "3", "--max-concurrent", "1")
            _, err = first.communicate(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(first.pid, signal.SIGKILL)
    assert second.returncode == 2
    assert second.stderr.startswith(f"error: study '{STUDY}' is being run by another search")
    assert f"pid {first.pid}, since " in second.stderr and second.stderr.count("\n") == 1
    assert first.returncode == 0, err
    assert [t.state for t in _study(tmp_path).trials] == [TrialState.COMPLETE] * 3


def test_sigint_and_sigterm_stop_cleanly_and_the_rerun_redoes_the_presets(
        tmp_path: Path) -> None:
    flags = ("--trials", "3", "--max-concurrent", "1")
    with _own_ray_tmp() as ray_tmp:
        # Ctrl-C in a terminal: SIGINT to the whole process group, Ray's workers included.
        search = _start(tmp_path, ray_tmp, *flags)
        _wait_for_running(tmp_path, search, "paper-mix")
        os.killpg(search.pid, signal.SIGINT)
        _, on_sigint = search.communicate(timeout=120)
        sigint_status = search.returncode
        # `kill PID`, `timeout`: SIGTERM to the driver, here while the rerun redoes paper-mix.
        search = _start(tmp_path, ray_tmp, *flags)
        _wait_for_running(tmp_path, search, "paper-mix")
        search.terminate()
        _, on_sigterm = search.communicate(timeout=120)
        sigterm_status = search.returncode
        after_term = [t.state for t in _study(tmp_path).trials]
        rerun = _search(tmp_path, ray_tmp, *flags)
    assert (sigint_status, sigterm_status) == (130, 143)
    assert on_sigint == "interrupted: 0 of 3 trials; rerun the same command to resume\n"
    # mobilenetv2, still queued from the first run, ran before paper-mix's new turn.
    done = after_term.count(TrialState.COMPLETE)
    assert on_sigterm == f"interrupted: {done} of 3 trials; rerun the same command to resume\n"
    assert TrialState.RUNNING not in after_term  # marked at once, not by the next run
    assert after_term.count(TrialState.FAIL) == 2
    assert rerun.returncode == 0, rerun.stderr
    study = _study(tmp_path)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert all(t.user_attrs[INTERRUPTED] for t in failed) and len(failed) == 2
    complete = _complete(study)
    assert len(complete) == 3
    assert sorted(t.user_attrs["preset"] for t in complete if "preset" in t.user_attrs) == [
        "mobilenetv2", "paper-mix"]


def _memory_in_use() -> float:
    """The node's used share of memory, as Ray's memory monitor computes it."""
    info = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    kib = {key: int(value.split()[0]) for key, value in info.items()}
    return 1 - kib["MemAvailable"] / kib["MemTotal"]


def test_a_trial_killed_by_rays_memory_monitor_fails_and_the_search_goes_on(
        tmp_path: Path) -> None:
    with _own_ray_tmp() as ray_tmp:
        # The kill threshold just above what the machine uses now: the trial's worker
        # (MobileNetV2, batch 128 at 32x32: about 3 GB) crosses it in its first steps.
        env = {**_env(ray_tmp), "RAY_memory_usage_threshold": f"{_memory_in_use() + 0.02:.3f}"}
        run = subprocess.run(
            [*SEARCH, "--results-dir", str(tmp_path), "--trials", "1", "--presets",
             "mobilenetv2", "--input-size", "32", "--subset", "1", "--batch-size", "128",
             "--max-concurrent", "1"],
            env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    (trial,) = _study(tmp_path).trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("killed by Ray's memory monitor"), \
        trial.user_attrs["fail_reason"]
    assert "[1/1] trials done (1 failed)" in run.stdout


def test_a_run_whose_every_trial_failed_exits_1_with_the_reason(tmp_path: Path) -> None:
    with _own_ray_tmp() as ray_tmp:
        # paper-mix's loss turns NaN at this learning rate (see the test above).
        run = _search(tmp_path, ray_tmp, "--trials", "1", "--presets", "paper-mix",
                      "--lr", "1e6")
    assert run.returncode == 1, run.stderr
    assert run.stderr.count("error: ") == 1
    assert run.stderr.splitlines()[-1].startswith(
        "error: every trial failed, all 1 with: NonFiniteLossError: ")
    assert "[1/1] trials done (1 failed)" in run.stdout
