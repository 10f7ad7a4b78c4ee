"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` package, our own cluster.

The server runs from a temporary data folder on a free localhost port, with password
authentication (the URLs the tests use hold a password, as real ones do), and is stopped
and deleted afterwards. PostgreSQL refuses to run as root, so as root it runs as the
``postgres`` user the package creates. Where it cannot start (no server binaries, no such
user, no driver), :func:`throwaway_server` skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "nas"
PASSWORD = "pg-s3cret"  # a password no printed line may show (search.study.storage)
_START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Server:
    port: int

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server, password included."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg  # only where the server started, which needs it

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``pg_config``'s answer, else Debian's newest."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                     check=True).stdout.strip())
        if (bindir / "initdb").is_file():
            return bindir
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)])
    return found[-1].parent if found else None


def _owner() -> pwd.struct_passwd | None:
    """Who runs the server: this user, or as root the ``postgres`` user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """A running server for the block; skips the test where none can start."""
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'cse-nas[postgres]'")
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb): apt-get install postgresql")
    owner = _owner()
    if owner is None:
        pytest.skip("PostgreSQL will not run as root and there is no 'postgres' user to run it")
    # Under /tmp, not pytest's tmp_path: the server's user must reach it, and the socket
    # path must stay short.
    home = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "cwd": home, "check": True,
                "capture_output": True, "text": True,
                # root's own groups stay with the server unless dropped (only root may)
                **({"extra_groups": []} if os.geteuid() == 0 else {})}
    try:
        (home / "pw").write_text(PASSWORD)
        for path in (home, home / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        port = _free_port()
        try:
            subprocess.run([str(bindir / "initdb"), "-D", str(home / "data"), "-U", USER,
                            "--auth=scram-sha-256", f"--pwfile={home / 'pw'}", "--no-sync",
                            "--encoding=UTF8", "--no-locale", "--no-instructions"], **as_owner)
            # Durability is not under test: no fsync makes the server start and write fast.
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(home / "data"), "-l",
                            str(home / "log"), "-w", "-t", str(_START_TIMEOUT_S), "-o",
                            f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off "
                            "-c synchronous_commit=off -c full_page_writes=off", "start"],
                           **as_owner)
        except (OSError, subprocess.CalledProcessError) as err:
            log = home / "log"
            detail = (log.read_text().strip().splitlines() or [""])[-1] if log.is_file() else ""
            pytest.skip(f"PostgreSQL did not start: {getattr(err, 'stderr', '') or err} "
                        f"{detail}".strip())
        try:
            yield Server(port)
        finally:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(home / "data"), "-m", "immediate",
                            "-w", "stop"], **{**as_owner, "check": False})
    finally:
        shutil.rmtree(home, ignore_errors=True)
