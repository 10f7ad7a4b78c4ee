"""Storage URLs: any results folder is taken literally; in-memory databases are refused;
SQLite commits without an fsync per write."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.study.storage import (
    StudyError,
    check_storage_url,
    default_storage,
    open_rdb_storage,
    sqlite_file,
)


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
