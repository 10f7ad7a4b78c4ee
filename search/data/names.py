"""Dataset names: the built-in ones, ``folder:PATH``, and short slugs for study names."""

from __future__ import annotations

import os
import re

from space import DATASET_SHAPES

__all__ = ["DATASETS", "FOLDER_PREFIX", "dataset_slug", "is_dataset"]

FOLDER_PREFIX = "folder:"  # "folder:PATH" names an image folder
DATASETS: tuple[str, ...] = tuple(DATASET_SHAPES)


def is_dataset(name: str) -> bool:
    """Whether ``name`` names a dataset: a built-in one or ``folder:PATH`` (PATH unchecked)."""
    return name in DATASET_SHAPES or (name.startswith(FOLDER_PREFIX)
                                      and len(name) > len(FOLDER_PREFIX))


def dataset_slug(name: str) -> str:
    """A short file-name-safe form of a dataset name, for default study names: built-in
    names as they are, ``folder:/data/My Pets`` as ``folder-My-Pets``."""
    if not name.startswith(FOLDER_PREFIX):
        return name
    base = os.path.basename(os.path.normpath(name.removeprefix(FOLDER_PREFIX)))
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")
    return f"folder-{base}" if base else "folder"
