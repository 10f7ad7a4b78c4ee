"""The search's storage on a real PostgreSQL server (tests/search/postgres.py starts one):
a search killed and resumed, its lease raced for, read by the report, the export and
optuna-dashboard while it writes. The SQLite versions are in test_search_e2e.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from search import export, report
from search.study.lease import EXPIRY_S, LEASE_KEY, Lease
from search.study.schema import INTERRUPTED, REJECTED
from tests.search.postgres import PASSWORD, USER
from tests.search.studies import ROWS, make_study
from tests.search.test_search_e2e import (
    STUDY,
    _free_port,
    _get_json,
    _own_ray_tmp,
    _search,
    _start,
    _study,
    _wait_until_running_after_complete,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]
optuna.logging.set_verbosity(optuna.logging.WARNING)

TRIALS = ("--trials", "3", "--max-concurrent", "1")


def _leave_lease(storage: optuna.storages.RDBStorage, study: str, lease: Lease) -> None:
    storage.set_study_system_attr(storage.get_study_id_from_name(study), LEASE_KEY,
                                  asdict(lease))


@dataclass(frozen=True)
class Resumed:
    """A search on PostgreSQL killed with SIGKILL, then, with a trial enqueued outside the
    space, rerun with --take-over while optuna-dashboard watched."""

    url: str
    killed: list[FrozenTrial]  # the trials as the killed search left them
    refused: subprocess.CompletedProcess[str]  # a rerun while another host seemed to drive it
    rerun: subprocess.Popen  # the rerun with --take-over, finished
    rerun_output: str  # its stdout and stderr
    outputs: str  # everything the three searches printed
    seen_while_running: list[list[str]]  # the dashboard's trial states during the rerun
    seen_after: dict  # the dashboard's study detail once the rerun finished


def _dashboard_states(port: int) -> list[str] | None:
    """The states optuna-dashboard lists for the study's trials; None before it lists it."""
    summaries = _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
    ids = [s["study_id"] for s in summaries if s["study_name"] == STUDY]
    if not ids:
        return None
    return [t["state"] for t in _get_json(f"http://127.0.0.1:{port}/api/studies/{ids[0]}")
            ["trials"]]


@pytest.fixture(scope="module")
def resumed(postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Resumed:
    url = postgres_server.create_database("resumed")
    storage = optuna.storages.RDBStorage(url)  # one engine for every poll; makes the tables
    results = tmp_path_factory.mktemp("results")
    flags = ("--storage", url, *TRIALS)
    with _own_ray_tmp() as ray_tmp:
        first = _start(results, ray_tmp, *flags)
        try:
            _wait_until_running_after_complete(storage, 1, first)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            killed_output = "".join(first.communicate(timeout=60))
        killed = _study(storage).get_trials()
        # Another host's driver, alive by its heartbeat: refused, unless taken over.
        _leave_lease(storage, STUDY, replace(Lease.mine(), host="another-host", pid=1))
        refused = _search(results, ray_tmp, *flags)
        # A user's own trial, enqueued with plain Optuna, outside the space.
        optuna.load_study(study_name=STUDY, storage=storage).enqueue_trial({"stem": 7})

        port = _free_port()
        dashboard = subprocess.Popen(
            [str(Path(sys.executable).parent / "optuna-dashboard"), url, "--host", "127.0.0.1",
             "--port", str(port), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _get_json(f"http://127.0.0.1:{port}/api/studies", timeout_s=60)
            rerun = _start(results, ray_tmp, *flags, "--take-over")
            seen = []
            while rerun.poll() is None:
                seen.append(_dashboard_states(port))
                time.sleep(0.5)
            rerun_output = "".join(rerun.communicate(timeout=60))
            summaries = _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            [study_id] = [s["study_id"] for s in summaries if s["study_name"] == STUDY]
            after = _get_json(f"http://127.0.0.1:{port}/api/studies/{study_id}")
        finally:
            dashboard.terminate()
            dashboard.wait(timeout=30)
    return Resumed(url=url, killed=killed, refused=refused, rerun=rerun,
                   rerun_output=rerun_output,
                   outputs=killed_output + refused.stdout + refused.stderr + rerun_output,
                   seen_while_running=[states for states in seen if states is not None],
                   seen_after=after)


def test_a_search_killed_on_postgres_resumes_and_finishes_the_budget(resumed: Resumed) -> None:
    before = [t for t in resumed.killed if t.state == TrialState.COMPLETE]
    running = [t.number for t in resumed.killed if t.state == TrialState.RUNNING]
    assert before and running
    assert resumed.rerun.returncode == 0, resumed.outputs
    study = _study(resumed.url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    after = {t.number: (t.values, t.datetime_complete) for t in complete}
    assert all(after[t.number] == (t.values, t.datetime_complete) for t in before)
    failed = [t for t in study.get_trials(states=(TrialState.FAIL,))
              if not t.user_attrs.get(REJECTED)]
    assert [t.number for t in failed] == running and all(t.user_attrs[INTERRUPTED]
                                                         for t in failed)
    assert "[3/3] trials done" in resumed.rerun_output


def test_a_trial_enqueued_outside_the_space_fails_and_the_search_goes_on(
        resumed: Resumed) -> None:
    [rejected] = [t for t in _study(resumed.url).trials if t.user_attrs.get(REJECTED)]
    assert rejected.state == TrialState.FAIL
    assert rejected.system_attrs["fixed_params"] == {"stem": 7}
    reason = "enqueued with params outside the search space: params: stem must be one of " \
             "(16, 24, 32), got 7"
    assert rejected.user_attrs["fail_reason"] == reason
    assert f"warning: trial {rejected.number} {reason}; marked FAIL\n" in resumed.rerun_output


def test_take_over_runs_a_study_another_host_seems_to_drive(resumed: Resumed) -> None:
    assert resumed.refused.returncode == 2
    assert resumed.refused.stderr.startswith(
        f"error: study '{STUDY}' is being run by another search (host another-host, pid 1, ")
    assert "took over the study's lease from host another-host, pid 1, since " in resumed.outputs


def test_no_line_a_search_prints_shows_the_password(resumed: Resumed) -> None:
    assert f"study:   {STUDY} in postgresql+psycopg://{USER}:***@127.0.0.1:" in resumed.outputs
    assert PASSWORD not in resumed.outputs


def test_optuna_dashboard_reads_the_study_while_the_search_writes(resumed: Resumed) -> None:
    seen = resumed.seen_while_running
    assert any("Running" in states for states in seen), seen
    assert len({tuple(states) for states in seen}) > 1, seen  # it followed the writes
    states = [t["state"] for t in resumed.seen_after["trials"]]
    assert states == [t.state.name.capitalize() for t in _study(resumed.url).trials]
    assert resumed.seen_after["objective_names"] == ["val_accuracy", "params"]


def test_report_and_export_read_a_study_in_postgres(
        postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_study(postgres_url)
    study = ["--study", "demo", "--storage", postgres_url, "--results-dir", str(tmp_path)]
    assert report.main(study) == 0  # figures and notes saved into the study too
    assert export.main(study) == 0
    out, err = capsys.readouterr()
    assert err == "" and "front: 3 networks (3 trials)" in out
    assert len(list((tmp_path / "demo" / "export").iterdir())) == 3
    assert (tmp_path / "demo" / "report.html").is_file()
    assert len(optuna.load_study(study_name="demo", storage=postgres_url).trials) == len(ROWS)


_CLAIMER = """
import sys, time
from pathlib import Path
import optuna
from search.study.lease import StudyBusyError, driver_lease
storage = optuna.storages.RDBStorage(sys.argv[1])
storage.get_study_id_from_name("s")  # connected before the start
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
try:
    with driver_lease(storage, "s"):
        print("won", flush=True)
        time.sleep(3)  # held while the others try
except StudyBusyError:
    print("busy", flush=True)
"""


@pytest.mark.parametrize("left", [None, "expired"], ids=["no lease", "an expired lease"])
def test_drivers_racing_for_a_study_on_postgres_exactly_one_wins(
        postgres_url: str, tmp_path: Path, left: str | None) -> None:
    storage = optuna.storages.RDBStorage(postgres_url)
    optuna.create_study(storage=storage, study_name="s")
    if left:  # then every driver races to replace it, not to insert one
        _leave_lease(storage, "s", replace(Lease.mine(), host="another-host", pid=1,
                                           heartbeat=time.time() - EXPIRY_S - 1))
    go = tmp_path / "go"
    drivers = [subprocess.Popen([sys.executable, "-c", _CLAIMER, postgres_url, str(go)],
                                stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        assert [d.stdout.readline() for d in drivers] == ["ready\n"] * 4
        go.touch()
        said = sorted(d.communicate(timeout=60)[0] for d in drivers)
    finally:
        for driver in drivers:
            driver.kill()
    assert said == ["busy\n"] * 3 + ["won\n"]
