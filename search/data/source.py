"""Is an image folder still the one a study was run on?

A folder without ``test/`` has its test split carved from its content
(:mod:`search.data.folder`), so one file added to a class reshuffles it: images the search
trained or selected on become test images, and a test accuracy measured then is a leak. A
study records its folder's ``source`` (:data:`search.study.schema.DATA_SOURCE`), and
``search.run`` (a resume), ``search.export`` and ``search.report`` all compare the folder
with it here, with :func:`check_unchanged`, before they use the study.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search.data.folder import scan_folder
from search.data.names import FOLDER_PREFIX
from search.data.splits import DatasetError

__all__ = ["check_unchanged", "folder_now"]

# What a changed fact means, for the one line a user reads; other facts go by their names.
_MEANING = {"content_key": "files added, removed or modified", "path": "another path",
            "layout": "another layout", "images": "other split sizes",
            "skipped": "other undecodable images"}


def folder_now(dataset: str) -> dict[str, str] | None:
    """The identity (path, layout, content key) of the image folder ``dataset`` names, as
    it is now, from its directory listing; ``None`` for a built-in dataset, or a folder
    that is gone: nothing can leak from it, and a command that needs its images fails on
    loading them."""
    if not dataset.startswith(FOLDER_PREFIX):
        return None
    path = dataset.removeprefix(FOLDER_PREFIX)
    if not Path(path).exists():
        return None
    return scan_folder(path).identity()


def check_unchanged(recorded: Any, current: Mapping[str, Any] | None, study: str) -> None:
    """:class:`DatasetError` (one line) unless every fact of ``current`` (a dataset's
    ``source``, or the part :func:`folder_now` knows) is what the study ``study``
    ``recorded``; a built-in dataset (``current`` None) has nothing to compare."""
    if current is None:
        return
    facts = recorded if isinstance(recorded, Mapping) else {}
    changed = [key for key, value in current.items() if facts.get(key) != value]
    if changed:
        what = ", ".join(_MEANING.get(key, f"another {key}") for key in changed)
        raise DatasetError(
            f"image folder {current.get('path', '?')} has changed since study {study!r} was "
            f"run on it ({what}): its splits are no longer the search's, so test images "
            "could be ones the search trained or selected on; restore the folder, or search "
            "it again under a new --study-name")
