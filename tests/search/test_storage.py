"""The search's SQLite storage commits without an fsync per write."""

from __future__ import annotations

from pathlib import Path

from search.storage import open_rdb_storage


def test_sqlite_storage_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    storage = open_rdb_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    with storage.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (mode, sync) == ("wal", 1)  # 1: NORMAL
