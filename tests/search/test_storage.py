"""Storage URLs: any results folder is taken literally; in-memory databases are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.storage import (
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
