"""Where studies and results live: storage URLs, opening a study, results folders.

The search keeps every study in an Optuna RDB storage, by default one SQLite file per
study in the results folder (``results/<study>.db``); reports and exports write into
``results/<study>/``. Every failure here is a one-line :class:`StudyError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url

from cse_nets.cli import first_line

__all__ = [
    "DEFAULT_RESULTS_DIR",
    "StudyError",
    "check_storage_url",
    "check_study_name",
    "default_storage",
    "open_rdb_storage",
    "open_study",
    "output_dir",
    "writing_to_storage",
]

DEFAULT_RESULTS_DIR = Path("results")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # also a file name: no '/'


class StudyError(ValueError):
    """A study that cannot be opened, read or written; the message is one line."""


def check_study_name(name: str) -> str:
    """``name`` if it is safe as a file name (it names the database and the results folder)."""
    if not _STUDY_NAME.fullmatch(name):
        raise StudyError(f"study name {name!r} must be letters, digits, '.', '_' or '-' "
                         "(it also names files)")
    return name


def default_storage(results_dir: Path, study: str) -> str:
    """Where the search keeps a study unless told otherwise: one SQLite file per study."""
    return f"sqlite:///{results_dir / study}.db"


def check_storage_url(storage: str) -> None:
    try:
        make_url(storage)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StudyError(f"malformed storage URL {storage!r}") from None


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"cannot create results dir {directory}: {err.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StudyError(f"results dir {directory} is not writable")


def open_rdb_storage(url: str, results_dir: Path | None = None) -> optuna.storages.RDBStorage:
    """The storage a search writes to, created if need be; ``results_dir`` (where the
    default SQLite file goes) is checked for writing first."""
    check_storage_url(url)
    if results_dir is not None:
        _check_writable(results_dir)
    try:
        storage = optuna.storages.RDBStorage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
        raise StudyError(f"cannot open storage {url}: {first_line(err)}") from None
    if storage.engine.dialect.name == "sqlite":
        event.listen(storage.engine, "connect", _fast_sqlite_commits)
        storage.engine.dispose()  # the connections opened so far lack the pragmas
    return storage


def _fast_sqlite_commits(connection: object, _record: object) -> None:
    """Commit to SQLite without waiting for the disk: a write-ahead log, synced at its
    checkpoints only.

    Sampling one trial writes its 53 parameters in 53 commits, and each commit waited for
    an fsync (~9 ms here: 0.7 s per trial, the largest per-trial cost of a search). With
    WAL and ``synchronous=NORMAL`` a killed search loses nothing, and a power cut at most
    the last commits, never the database's consistency. (WAL needs a local disk, not NFS.)
    """
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_study(name: str, storage: str) -> optuna.Study:
    """Load an existing study; :class:`StudyError` if the URL or the study is not there."""
    check_storage_url(storage)
    url = make_url(storage)
    # Optuna would create a missing SQLite file (and its tables) just to find it empty.
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise StudyError(f"no study database at {url.database or storage!r}")
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in
                 optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise StudyError(f"no study named {name!r} in {storage}"
                         + (f" (it has: {', '.join(known)})" if known else "")) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as err:
        raise StudyError(f"cannot open storage {storage}: {first_line(err)}") from None


@contextmanager
def writing_to_storage(what: str) -> Iterator[None]:
    """Database errors while writing into a study (a locked SQLite file, a read-only
    server) become a one-line :class:`StudyError` naming ``what`` was being saved."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as err:
        raise StudyError(f"cannot save {what} into the study: {first_line(err)}") from None


def output_dir(results_dir: Path, study: str, *parts: str) -> Path:
    """``<results-dir>/<study>/<parts...>``, created; :class:`StudyError` if it cannot be."""
    path = results_dir.joinpath(check_study_name(study), *parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"cannot create results directory {path}: {err.strerror}") from None
    return path
