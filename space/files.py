"""Where the project caches files, and how a file is replaced so that no reader ever sees
half of it.

Decoded datasets, image-folder facts and latency tables are shared by parallel trials
(other processes, sometimes other threads): a writer fills a new file beside the target
and renames it over the target, which POSIX makes atomic within one directory. A folder
whose files belong together (an export) is filled beside its target the same way.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_root", "write_atomically", "write_folder_atomically", "write_text_atomically"]


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
