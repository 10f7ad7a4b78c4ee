"""Where the project caches files, and how a file is replaced so that no reader ever sees
half of it.

Decoded datasets, image-folder facts and latency tables are shared by parallel trials
(other processes, sometimes other threads): a writer fills a new file beside the target
and renames it over the target, which POSIX makes atomic within one directory. A folder
whose files belong together (an export) is filled beside its target the same way. A
folder that one long run fills over many files (a benchmark's run) is held by that run
alone while it writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LOCK_FILE", "cache_root", "hold_folder", "write_atomically",
           "write_folder_atomically", "write_text_atomically"]

LOCK_FILE = ".lock"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/cse-nas``, or ``~/.cache/cse-nas`` when it is unset or empty."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cse-nas"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Replace ``path`` (creating its folder) with the file ``write`` writes to the path it
    is given; readers see the old file or the whole new one.

    On any error the new file is removed and the error raised again, ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _beside(path, "partial")
    try:
        write(partial)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_folder_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Replace the folder ``path`` (creating its parent) with the one ``write`` fills: it is
    given a new, empty folder beside ``path``, and ``path`` holds the old files or all the
    new ones, never a mix.

    On any error the new folder is removed and the error raised again, ``path`` untouched.
    A folder cannot be renamed over another, so the old one is first renamed aside: a crash
    between the two renames leaves it there (``<name>.<pid>-<hex>.old``), not half of it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial, old = _beside(path, "partial"), _beside(path, "old")
    partial.mkdir()
    try:
        write(partial)
        if path.exists():
            path.replace(old)
        try:
            partial.replace(path)
        except BaseException:
            if old.exists():
                old.replace(path)
            raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _beside(path: Path, kind: str) -> Path:
    """A new name beside ``path``: the process id says whose a left-over one is; the random
    part keeps two threads of one process apart."""
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{kind}")


def write_text_atomically(path: Path, text: str) -> None:
    """:func:`write_atomically` for a text file."""
    write_atomically(path, lambda partial: partial.write_text(text))


@contextlib.contextmanager
def hold_folder(folder: Path, instead: str = "give another run folder") -> Iterator[None]:
    """Hold ``folder`` (creating it) for this process alone while the block runs; a second
    holder is refused at once with a ``ValueError`` naming the first and what to do
    ``instead``, rather than interleaving its rows with the first's.

    The hold is the kernel's ``flock`` on ``folder/.lock``, so it ends with the process
    however the process ends (SIGKILL included) and a rerun needs no clean-up.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise ValueError(f"{folder} is in use by {holder}: wait for it to end, or "
                             f"{instead}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        lock.flush()
        yield
