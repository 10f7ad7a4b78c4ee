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
from urllib.parse import quote, unquote

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
    "sqlite_file",
    "sqlite_url",
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


def sqlite_url(path: Path) -> str:
    """A SQLite URL whose database file is ``path`` exactly, whatever characters it holds."""
    plain = f"sqlite:///{path}"
    if make_url(plain).database == str(path):
        return plain
    # '?' or '#' would start a query or fragment: use SQLite's URI filename instead, quoted
    # twice because SQLAlchemy unquotes the database once and SQLite once more.
    return f"sqlite:///file:{quote(quote(str(path)))}?uri=true"


def sqlite_file(storage: str) -> Path | None:
    """The file a SQLite storage URL names (either spelling of :func:`sqlite_url`), or
    ``None`` for any other database."""
    url = make_url(storage)
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    if url.query.get("uri") == "true" and url.database.startswith("file:"):
        return Path(unquote(url.database.removeprefix("file:")))
    return Path(url.database)


def default_storage(results_dir: Path, study: str) -> str:
    """Where the search keeps a study unless told otherwise: one SQLite file per study."""
    return sqlite_url(results_dir / f"{study}.db")


def check_storage_url(storage: str) -> None:
    """A URL SQLAlchemy can parse and that names a database that outlives this process."""
    try:
        url = make_url(storage)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StudyError(f"malformed storage URL {storage!r}") from None
    in_memory = url.database in (None, "", ":memory:") or "mode=memory" in storage
    if url.get_backend_name() == "sqlite" and in_memory:
        raise StudyError(f"storage {storage!r} is an in-memory SQLite database, which vanishes "
                         "when the process ends; name a file: sqlite:///path/to/study.db")


def _storage_error(url: str, err: Exception) -> StudyError:
    """One line for a storage that cannot be opened; Optuna's schema check gets its fix."""
    if isinstance(err, RuntimeError) and "optuna storage upgrade" in str(err):
        return StudyError(f"storage {url} was set up by another Optuna version than this one "
                          f"({optuna.__version__}); run `optuna storage upgrade --storage {url}`")
    return StudyError(f"cannot open storage {url}: {first_line(err)}")


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
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, RuntimeError) as err:
        raise _storage_error(url, err) from None
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
    check_study_name(name)
    check_storage_url(storage)
    path = sqlite_file(storage)
    # Optuna would create a missing SQLite file (and its tables) just to find it empty.
    if path is not None and not path.is_file():
        raise StudyError(f"no study database at {path}")
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in
                 optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise StudyError(f"no study named {name!r} in {storage}"
                         + (f" (it has: {', '.join(known)})" if known else "")) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, RuntimeError) as err:
        raise _storage_error(storage, err) from None


@contextmanager
def writing_to_storage(what: str) -> Iterator[None]:
    """Database errors while writing into a study (a locked SQLite file, a read-only
    server) become a one-line :class:`StudyError` naming ``what`` was being saved."""
    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        cause = err.__cause__ or err  # Optuna wraps the database's own error
        raise StudyError(f"cannot save {what} into the study: {first_line(cause)}") from None


def output_dir(results_dir: Path, study: str, *parts: str) -> Path:
    """``<results-dir>/<study>/<parts...>``, created; :class:`StudyError` if it cannot be."""
    path = results_dir.joinpath(check_study_name(study), *parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"cannot create results directory {path}: {err.strerror}") from None
    return path
