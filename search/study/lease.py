"""One driver per study: a lease with a heartbeat, kept in the study's own database.

The search writes a study from one process, its driver; a second driver on the same study
would fail the first one's live trials and then crash it. So a driver holds a lease: a
study system attribute (:data:`search.study.schema.LEASE_KEY`) naming its host, pid and
start, refreshed every :data:`HEARTBEAT_S` seconds. Another driver is refused while the
lease is alive. A lease whose heartbeat is older than :data:`EXPIRY_S`, or whose process
is gone from this very host (a driver killed with SIGKILL), is taken over, so a rerun
needs no manual step.

Claims and refreshes are compare-and-set statements on Optuna's
``study_system_attributes`` table (unique on study and key), so two drivers starting
together cannot both win, on SQLite as on a server database. Heartbeats compare wall
clocks: across hosts that assumes clocks within a fraction of :data:`EXPIRY_S`. A
heartbeat from the future (the holder's clock is ahead) proves nothing, so such a lease
is watched on this host's own monotonic clock instead: unchanged for :data:`EXPIRY_S`, it
is dead. ``take_over`` (``python -m search.run --take-over``) takes any lease, for the
person who knows its driver is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

import optuna
import sqlalchemy
import sqlalchemy.exc

from search.study.schema import LEASE_KEY

__all__ = ["EXPIRY_S", "HEARTBEAT_S", "Lease", "StudyBusyError", "driver_lease", "process_start"]

HEARTBEAT_S = 10.0
EXPIRY_S = 60.0  # six missed heartbeats: a stalled database, not a slow one

_TABLE = sqlalchemy.table("study_system_attributes", sqlalchemy.column("study_id"),
                          sqlalchemy.column("key"), sqlalchemy.column("value_json"))


class StudyBusyError(ValueError):
    """Another live driver holds the study; the message (one line) names it."""


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a later process that
    reuses its number; ``None`` where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


@dataclass(frozen=True)
class Lease:
    """Who drives a study, and when they last said so."""

    host: str
    pid: int
    started: str | None  # the process's start (see process_start)
    since: float  # epoch seconds
    heartbeat: float  # epoch seconds
    token: str  # unique per claim

    @classmethod
    def mine(cls) -> Lease:
        now = time.time()
        return cls(host=socket.gethostname(), pid=os.getpid(),
                   started=process_start(os.getpid()), since=now, heartbeat=now,
                   token=uuid.uuid4().hex)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since).astimezone().isoformat(timespec="seconds")
        return f"host {self.host}, pid {self.pid}, since {since}"

    def is_dead(self, now: float, expiry_s: float = EXPIRY_S) -> bool:
        """Its heartbeat expired, or its process is gone from this host."""
        if now - self.heartbeat > expiry_s:
            return True
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return True  # an earlier process with our number (a restarted container)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        return self.started is not None and process_start(self.pid) != self.started

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class _LeaseTable:
    """Compare-and-set on the one row that holds a study's lease."""

    def __init__(self, engine: sqlalchemy.Engine, study_id: int) -> None:
        self._engine = engine
        self._where = (_TABLE.c.study_id == study_id) & (_TABLE.c.key == LEASE_KEY)
        self._study_id = study_id

    def read(self) -> str | None:
        with self._engine.connect() as connection:
            return connection.execute(
                sqlalchemy.select(_TABLE.c.value_json).where(self._where)).scalar_one_or_none()

    def insert(self, value: str) -> bool:
        try:
            with self._engine.begin() as connection:
                connection.execute(sqlalchemy.insert(_TABLE).values(
                    study_id=self._study_id, key=LEASE_KEY, value_json=value))
        except sqlalchemy.exc.IntegrityError:  # another driver inserted first
            return False
        return True

    def replace(self, old: str, new: str | None) -> bool:
        """``old`` -> ``new`` (``None``: delete) if the row still holds ``old``."""
        where = self._where & (_TABLE.c.value_json == old)
        statement = (sqlalchemy.delete(_TABLE).where(where) if new is None
                     else sqlalchemy.update(_TABLE).where(where).values(value_json=new))
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1


def _parse(value: str) -> Lease | None:
    try:
        return Lease(**json.loads(value))
    except (ValueError, TypeError):
        return None  # not ours, or from another version: as good as expired


def _changes_within(table: _LeaseTable, value: str, seconds: float) -> bool:
    """Whether the lease row stops holding ``value`` within ``seconds`` of this host's
    monotonic clock (a live driver rewrites it every heartbeat)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(seconds / 30)
        if table.read() != value:
            return True
    return False


def _is_alive(table: _LeaseTable, held: Lease, value: str, expiry_s: float,
              out: TextIO) -> bool:
    """Whether ``held`` (stored as ``value``) is a live driver's: by its heartbeat and its
    process, or, where its heartbeat is from the future, by whether it changes."""
    now = time.time()
    if held.is_dead(now, expiry_s):
        return False
    ahead = held.heartbeat - now
    if ahead <= HEARTBEAT_S:
        return True
    print(f"the lease of {held.describe()} has a heartbeat {ahead:.0f} s ahead of this host's "
          f"clock; watching it for {expiry_s:g} s for a sign of life", file=out)
    return _changes_within(table, value, expiry_s)


def _claim(table: _LeaseTable, study: str, *, take_over: bool, expiry_s: float,
           out: TextIO) -> Lease:
    mine = Lease.mine()
    current = table.read()
    if current is None and table.insert(mine.to_json()):
        return mine
    current = table.read() if current is None else current
    held = _parse(current) if current is not None else None
    if held is not None and not take_over and _is_alive(table, held, current, expiry_s, out):
        raise StudyBusyError(f"study {study!r} is being run by another search ({held.describe()})"
                             "; wait for it to finish or stop it, then rerun (--take-over if "
                             "you know it is gone)")
    if current is None or not table.replace(current, mine.to_json()):
        # It changed under us: another driver claimed it in between, or refreshed it.
        raise StudyBusyError(f"study {study!r} was claimed or refreshed by another search just "
                             "now; rerun to see which")
    if held is not None:
        print(f"took over the study's lease from {held.describe()}"
              + (" (--take-over)" if take_over else ": its driver is gone"), file=out)
    return mine


@contextlib.contextmanager
def driver_lease(storage: optuna.storages.RDBStorage, study: str, *, take_over: bool = False,
                 expiry_s: float = EXPIRY_S, out: TextIO = sys.stderr) -> Iterator[Lease]:
    """Hold ``study``'s lease for the block, refreshing it from a daemon thread;
    :class:`StudyBusyError` if a live driver holds it, or with ``take_over`` if it is
    refreshed while being taken. Taking another driver's lease prints whose it was on
    ``out``. ``expiry_s``: how long a driver may go without a heartbeat before it counts as
    dead."""
    table = _LeaseTable(storage.engine, storage.get_study_id_from_name(study))
    lease = _claim(table, study, take_over=take_over, expiry_s=expiry_s, out=out)
    stop = threading.Event()
    state = {"value": lease.to_json()}

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            new = replace(lease, heartbeat=time.time()).to_json()
            try:
                if not table.replace(state["value"], new):
                    return  # taken over (we looked dead): nothing left to refresh
            except sqlalchemy.exc.SQLAlchemyError:
                continue  # a busy database: the next beat tries again
            state["value"] = new

    thread = threading.Thread(target=beat, name="study-lease", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # it expires on its own
            table.replace(state["value"], None)
