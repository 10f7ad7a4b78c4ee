"""Storage URLs: any results folder is taken literally; in-memory databases and paths that
are not UTF-8 are refused; passwords are never shown; SQLite commits without an fsync per
write, and a study on a read-only file system is read read-only."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from search import export, report, run
from search.study.storage import (
    StudyError,
    check_storage_url,
    default_storage,
    display_url,
    open_rdb_storage,
    open_study,
    sqlite_file,
    sqlite_read_only,
    sqlite_url,
)
from tests.search.studies import ROWS, make_study


@pytest.mark.parametrize("folder", ["plain", "r?x=1", "a#b", "100%", "sp ace"])
def test_the_default_database_lands_in_the_folder_named(tmp_path: Path, folder: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_storage(Path(folder), "study")
    assert sqlite_file(url) == Path(folder) / "study.db"
    open_rdb_storage(url, Path(folder))
    assert (tmp_path / folder / "study.db").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [folder]  # nothing beside it


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file:x?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(StudyError, match="in-memory"):
        check_storage_url(url)


def test_sqlite_storage_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    storage = open_rdb_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    with storage.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (mode, sync) == ("wal", 1)  # 1: NORMAL


SECRET = "s3cret-pw"
MAINS = {"run": run.main, "report": report.main, "export": export.main}


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql+psycopg://nas:{SECRET}@db.example:5432/studies",
     "postgresql+psycopg://nas:***@db.example:5432/studies"),
    ("postgresql+psycopg://nas@db.example/studies", "postgresql+psycopg://nas@db.example/studies"),
    ("sqlite:///results/100%/s.db", "sqlite:///results/100%/s.db"),  # as given, unquoted
    (f"postgresql+psycopg://nas:{SECRET}@db.example:port/studies",  # malformed port
     "postgresql+psycopg://nas:***@db.example:port/studies"),
])
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", list(MAINS))
def test_a_storage_password_is_in_no_error_line(command: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql+psycopg://nas:{SECRET}@127.0.0.1:{_closed_port()}/studies"
    which = ["--dataset", "synthetic"] if command == "run" else ["--study", "demo"]
    status = MAINS[command]([*which, "--storage", url, "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("error: cannot open storage postgresql+psycopg://nas:***@127.0.0.1:")
    assert err.count("\n") == 1 and SECRET not in out + err


@pytest.mark.parametrize("command", list(MAINS))
@pytest.mark.parametrize("where", ["--storage", "--results-dir"])
def test_a_storage_path_that_is_not_utf8_is_refused_before_anything_is_written(
        command: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    undecodable = os.fsdecode(bytes(tmp_path) + b"/\xff")  # as Python hands it over
    flags = (["--storage", f"sqlite:///{undecodable}.db", "--results-dir", str(tmp_path / "r")]
             if where == "--storage" else ["--results-dir", undecodable])
    which = ["--dataset", "synthetic"] if command == "run" else ["--study", "demo"]
    assert MAINS[command]([*which, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: storage 'sqlite:///") and err.count("\n") == 1
    assert "\\udcff" in err and "is not UTF-8 text" in err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs of this test's own; skipped where this process may not mount one.
    As root, file modes bind nobody: only a read-only file system makes writes fail."""
    path = tmp_path / "mount"
    path.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "cse-nas-test", str(path)],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        pytest.skip(f"a read-only file system needs a mount, which needs root: {detail}")
    try:
        yield path
    finally:  # lazily: the studies read may hold the file open until collected
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def _study_on_read_only_mount(mount: Path, *, wal: bool) -> str:
    storage = sqlite_url(mount / "demo.db")
    written = open_rdb_storage(storage) if wal else optuna.storages.RDBStorage(storage)
    make_study(written)
    written.engine.dispose()  # no file left open for writing: the remount needs that
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    assert sqlite_read_only(storage)
    return storage


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_report_and_export_read_a_study_on_a_read_only_file_system(
        mount: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The search's own SQLite files keep a write-ahead log (open_rdb_storage).
    storage = _study_on_read_only_mount(mount, wal=True)
    study = ["--study", "demo", "--storage", storage, "--results-dir", str(tmp_path / "res")]

    assert report.main(study) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "figures and notes not saved into the study: its database is read-only" in out
    assert (tmp_path / "res" / "demo" / "report.html").is_file()
    assert export.main(study) == 0
    assert export.main([*study, "--retrain-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the study's database is read-only, and --retrain-epochs")
    assert [p.name for p in mount.iterdir()] == ["demo.db"]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_study_with_a_rollback_journal_is_read_on_a_read_only_file_system(
        mount: Path) -> None:
    storage = _study_on_read_only_mount(mount, wal=False)
    assert len(open_study("demo", storage).trials) == len(ROWS)
