"""One driver per study: the lease in the study's database (search.study.lease)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pytest

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
