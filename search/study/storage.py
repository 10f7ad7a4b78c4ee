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
    "display_url",
    "open_rdb_storage",
    "open_study",
    "output_dir",
    "sqlite_file",
    "sqlite_read_only",
    "sqlite_url",
    "writing_to_storage",
]

DEFAULT_RESULTS_DIR = Path("results")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # also a file name: no '/'
# In a URL SQLAlchemy cannot parse, whatever stands where a password would: from the ':'
# after the user name to the last '@' (hiding too much is harmless, too little is not).
_PASSWORD = re.compile(r"(://[^:/@]*:).*@")


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
    # '?' or '#' would start a query or fragment: use SQLite's URI filename instead.
    return _sqlite_uri(path)


def _sqlite_uri(path: Path, option: str | None = None) -> str:
    """``path`` as a SQLite URI filename with an ``option`` (``mode=ro``) for SQLite; quoted
    twice because SQLAlchemy unquotes the database once and SQLite once more."""
    return f"sqlite:///file:{quote(quote(str(path)))}?{option + '&' if option else ''}uri=true"


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


def display_url(url: str) -> str:
    """``url`` as every message and printed line shows it: with its password hidden
    (``***``), as SQLAlchemy renders it; a URL without a password stays as given."""
    try:
        parsed = make_url(url)
        return url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # malformed, or not UTF-8
        return _PASSWORD.sub(r"\1***@", url)


def check_storage_url(storage: str) -> None:
    """A URL SQLAlchemy can parse and that names a database that outlives this process."""
    try:
        storage.encode()
    except UnicodeEncodeError:
        # A path in another encoding (Python keeps its bytes as surrogates): SQLite would
        # create the file, and the study's first write would fail.
        raise StudyError(f"storage {display_url(storage)!r} is not UTF-8 text (a file or "
                         "folder name in another encoding?); rename it or choose another "
                         "path") from None
    try:
        url = make_url(storage)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StudyError(f"malformed storage URL {display_url(storage)!r}") from None
    in_memory = url.database in (None, "", ":memory:") or "mode=memory" in storage
    if url.get_backend_name() == "sqlite" and in_memory:
        raise StudyError(f"storage {storage!r} is an in-memory SQLite database, which vanishes "
                         "when the process ends; name a file: sqlite:///path/to/study.db")


def _storage_error(url: str, err: Exception) -> StudyError:
    """One line for a storage that cannot be opened; Optuna's schema check gets its fix."""
    shown = display_url(url)
    if isinstance(err, RuntimeError) and "optuna storage upgrade" in str(err):
        return StudyError(f"storage {shown} was set up by another Optuna version than this one "
                          f"({optuna.__version__}); run `optuna storage upgrade --storage "
                          f"{shown}`")
    if isinstance(err, ModuleNotFoundError):
        return StudyError(f"cannot open storage {shown}: no driver for it ({first_line(err)}); "
                          "for PostgreSQL: pip install 'cse-nas[postgres]'")
    return StudyError(f"cannot open storage {shown}: {first_line(err)}")


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


def sqlite_read_only(storage: str) -> bool:
    """Whether ``storage`` is a SQLite file this process may read but not write (on a
    read-only mount, in another user's folder): :func:`open_study` opens it read-only."""
    path = sqlite_file(storage)
    return path is not None and path.is_file() and not (
        os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK))


def _read_only_url(path: Path) -> str:
    """A URL that reads the SQLite file ``path`` without writing anything.

    SQLite reads a write-ahead-log database (as :func:`open_rdb_storage` makes them) only
    through its ``-shm`` file, which it cannot create in a read-only folder. Without one no
    connection has the file open, and SQLite may read it as immutable: unlocked, as is.
    """
    with path.open("rb") as file:
        wal = file.read(20)[18:20] == b"\x02\x02"  # the header's read and write versions
    shm = path.with_name(path.name + "-shm")
    return _sqlite_uri(path, "immutable=1" if wal and not shm.exists() else "mode=ro")


def open_study(name: str, storage: str) -> optuna.Study:
    """Load an existing study, read-only where its SQLite file cannot be written;
    :class:`StudyError` if the URL or the study is not there."""
    check_study_name(name)
    check_storage_url(storage)
    path = sqlite_file(storage)
    # Optuna would create a missing SQLite file (and its tables) just to find it empty.
    if path is not None and not path.is_file():
        raise StudyError(f"no study database at {path}")
    url = _read_only_url(path) if path is not None and sqlite_read_only(storage) else storage
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        known = [s.study_name for s in
                 optuna.get_all_study_summaries(url, include_best_trial=False)]
        raise StudyError(f"no study named {name!r} in {display_url(storage)}"
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
