"""One driver per study: the lease in the study's database (search.study.lease)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pytest

from search.driver.config import parse_config
from search.study.lease import (
    EXPIRY_S,
    Lease,
    StudyBusyError,
    driver_lease,
    process_start,
)
from search.study.schema import LEASE_KEY

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    optuna.create_study(storage=storage, study_name="s")
    return storage


def _leave_lease(storage: optuna.storages.RDBStorage, lease: Lease) -> None:
    """What a driver that died without releasing would leave behind."""
    storage.set_study_system_attr(storage.get_study_id_from_name("s"), LEASE_KEY, asdict(lease))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_driver_is_refused_while_a_live_one_holds_the_study(storage) -> None:
    # Two drivers of one study, the first a live process of this host: its lease is what
    # driver_lease writes (two real drivers: tests/search/test_search_e2e.py).
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            live = replace(Lease.mine(), pid=other.pid, started=process_start(other.pid))
            _leave_lease(storage, live)
            with pytest.raises(StudyBusyError) as info, driver_lease(storage, "s"):
                pass
        finally:
            other.kill()
    message = str(info.value)
    assert f"host {live.host}, pid {other.pid}, since " in message and "\n" not in message
    other.wait()
    with driver_lease(storage, "s") as held:  # its process gone: taken over
        assert held.pid == os.getpid()
    with driver_lease(storage, "s"):  # and released on exit
        pass


def test_our_own_pid_in_a_lease_is_an_earlier_process(storage) -> None:
    _leave_lease(storage, replace(Lease.mine(), since=0.0))  # e.g. a restarted container
    with driver_lease(storage, "s"):
        pass


def test_the_lease_of_a_driver_killed_on_this_host_is_taken_over(storage) -> None:
    _leave_lease(storage, replace(Lease.mine(), pid=_dead_pid(), started=None))
    with driver_lease(storage, "s") as held:
        assert held.pid == os.getpid()


def test_a_lease_elsewhere_holds_until_its_heartbeat_expires(storage) -> None:
    elsewhere = replace(Lease.mine(), host="another-host", pid=1)
    _leave_lease(storage, elsewhere)
    with pytest.raises(StudyBusyError, match="host another-host, pid 1"), \
            driver_lease(storage, "s"):
        pass
    _leave_lease(storage, replace(elsewhere, heartbeat=time.time() - EXPIRY_S - 1))
    with driver_lease(storage, "s") as held:
        assert held.host != "another-host"


def test_a_foreign_value_under_the_key_counts_as_expired(storage) -> None:
    storage.set_study_system_attr(storage.get_study_id_from_name("s"), LEASE_KEY, "junk")
    with driver_lease(storage, "s"):
        pass


SKEWED = 3600.0  # a host whose clock is an hour ahead


def test_a_lease_from_the_future_that_never_changes_is_taken_over(storage) -> None:
    ahead = replace(Lease.mine(), host="skewed-host", pid=1, heartbeat=time.time() + SKEWED)
    _leave_lease(storage, ahead)
    out = io.StringIO()
    start = time.monotonic()
    with driver_lease(storage, "s", expiry_s=0.5, out=out) as held:
        assert held.host != "skewed-host"
    assert time.monotonic() - start >= 0.5  # watched for that long on this host's clock
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("the lease of host skewed-host, pid 1, since ")
    assert "3600 s ahead of this host's clock" in lines[0]
    assert lines[1].startswith("took over the study's lease from host skewed-host, pid 1")


def test_a_lease_from_the_future_that_keeps_beating_is_refused(storage) -> None:
    ahead = replace(Lease.mine(), host="skewed-host", pid=1, heartbeat=time.time() + SKEWED)
    _leave_lease(storage, ahead)
    stop = threading.Event()

    def beat() -> None:  # the skewed host's live driver
        while not stop.wait(0.05):
            _leave_lease(storage, replace(ahead, heartbeat=time.time() + SKEWED))

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        with pytest.raises(StudyBusyError, match="host skewed-host, pid 1"), \
                driver_lease(storage, "s", expiry_s=2.0, out=io.StringIO()):
            pass
    finally:
        stop.set()
        beating.join()


def test_take_over_takes_a_live_lease_and_says_whose(storage) -> None:
    assert parse_config(["--dataset", "synthetic", "--take-over"]).take_over
    assert not parse_config(["--dataset", "synthetic"]).take_over
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            _leave_lease(storage, replace(Lease.mine(), pid=other.pid,
                                          started=process_start(other.pid)))
            out = io.StringIO()
            with driver_lease(storage, "s", take_over=True, out=out) as held:
                assert held.pid == os.getpid()
        finally:
            other.kill()
    assert out.getvalue().startswith(f"took over the study's lease from host {held.host}, "
                                     f"pid {other.pid}, since ")
    assert out.getvalue().endswith(" (--take-over)\n")
