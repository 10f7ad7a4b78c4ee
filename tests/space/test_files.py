"""The cache folder and write-then-rename: a file appears whole or not at all; a held
folder has one writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from space.files import (
    cache_root,
    hold_folder,
    write_atomically,
    write_folder_atomically,
    write_text_atomically,
)


def test_cache_root_honours_xdg_cache_home(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "cse-nas"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "cse-nas"


def test_the_file_appears_only_once_written_whole(tmp_path) -> None:
    path = tmp_path / "new" / "facts.json"  # the folder is made too

    def write(partial: Path) -> None:
        partial.write_text("half")
        assert not path.exists()  # readers see nothing yet, not half a file
        with partial.open("a") as file:
            file.write(" and half")

    write_atomically(path, write)
    assert path.read_text() == "half and half"
    assert [p.name for p in path.parent.iterdir()] == ["facts.json"]
    write_text_atomically(path, "replaced")
    assert path.read_text() == "replaced"
    assert [p.name for p in path.parent.iterdir()] == ["facts.json"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_write_leaves_the_old_file_and_no_partial_one(tmp_path, error) -> None:
    path = tmp_path / "cache.pt"
    path.write_text("old")

    def write(partial: Path) -> None:
        partial.write_text("new but not all of it")
        raise error

    with pytest.raises(type(error)):
        write_atomically(path, write)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.pt"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path) -> None:
    path = tmp_path / "exports" / "0-bc-3k"  # the parent is made too

    def write(names: tuple[str, ...], fail: bool = False):
        def fill(partial: Path) -> None:
            assert partial.parent == path.parent and not any(partial.iterdir())
            for name in names:
                (partial / name).write_text(name)
                if fail:
                    raise OSError(28, "No space left on device")
        return fill

    write_folder_atomically(path, write(("arch.json", "weights.pt")))
    assert sorted(p.name for p in path.iterdir()) == ["arch.json", "weights.pt"]
    with pytest.raises(OSError, match="No space"):
        write_folder_atomically(path, write(("arch.json", "model.onnx"), fail=True))
    assert sorted(p.name for p in path.iterdir()) == ["arch.json", "weights.pt"]
    write_folder_atomically(path, write(("arch.json",)))
    assert [p.name for p in path.iterdir()] == ["arch.json"]  # no file of the old folder
    assert [p.name for p in path.parent.iterdir()] == ["0-bc-3k"]  # nothing left beside it


def _hold_in_another_process(folder: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys\nfrom pathlib import Path\nfrom space.files import hold_folder\n"
            f"with hold_folder(Path({str(folder)!r})):\n    print('held')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)


def test_a_held_folder_refuses_a_second_holder_until_released(tmp_path) -> None:
    folder = tmp_path / "run"
    with hold_folder(folder):
        refused = _hold_in_another_process(folder)
        assert refused.returncode == 1
        assert f"{folder} is in use by pid {os.getpid()}" in refused.stderr
    assert _hold_in_another_process(folder).stdout == "held\n"


def test_a_holder_killed_with_sigkill_releases_the_folder(tmp_path) -> None:
    folder = tmp_path / "run"
    code = ("import time\nfrom pathlib import Path\nfrom space.files import hold_folder\n"
            f"with hold_folder(Path({str(folder)!r})):\n    print('held', flush=True)\n"
            "    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert _hold_in_another_process(folder).returncode == 1
    holder.kill()
    holder.wait()
    assert _hold_in_another_process(folder).stdout == "held\n"
