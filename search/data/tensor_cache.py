"""The decoded-tensor cache: a dataset decoded once, then loaded from one ``.pt`` file."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from search.data.splits import DatasetError, DecodedArrays
from space import InputShape
from space.files import write_atomically

__all__ = ["cached_arrays", "folder_tag"]


def folder_tag(folder: Path) -> str:
    """A short hash of ``folder`` (an absolute path), for cache names: two folders holding
    the same dataset get files of their own."""
    return hashlib.sha256(str(folder).encode(errors="surrogateescape")).hexdigest()[:8]


def cached_arrays(path: Path, shape: InputShape,
                  read: Callable[[], DecodedArrays]) -> DecodedArrays:
    """The arrays cached at ``path``, else ``read()`` checked against ``shape`` and cached."""
    if path.is_file():
        try:
            arrays = DecodedArrays(**torch.load(path, weights_only=True))
            _check(shape, arrays, str(path))
            return arrays
        except Exception:  # whatever the damage (pickle, zip, shapes): rebuild the file
            warnings.warn(f"{path}: damaged cache file, decoding the dataset again", stacklevel=3)
    arrays = read()
    _check(shape, arrays, path.stem)
    # Only the fields that are set, so that built-in datasets' files stay readable by the
    # versions before image folders (a data root may be shared).
    fields = {key: value for key, value in arrays._asdict().items()
              if isinstance(value, Tensor) or value}
    try:
        # Atomically, so that parallel trials never read a half-written file.
        write_atomically(path, lambda partial: torch.save(fields, partial))
    except OSError as err:
        warnings.warn(f"could not cache {path.stem} in {path.parent}: {err}", stacklevel=3)
    return arrays


def _check(shape: InputShape, arrays: DecodedArrays, where: str) -> None:
    chw = shape.chw
    pairs = [(arrays.train_images, arrays.train_labels), (arrays.test_images, arrays.test_labels)]
    if arrays.val_images is not None and arrays.val_labels is not None:
        pairs.append((arrays.val_images, arrays.val_labels))
    for images, labels in pairs:
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != chw:
            raise DatasetError(f"{where}: images are {images.dtype} {tuple(images.shape)}, "
                               f"expected uint8 (N, {', '.join(map(str, chw))})")
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            raise DatasetError(f"{where}: {len(labels)} labels for {len(images)} images")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < shape.num_classes:
            raise DatasetError(f"{where}: labels outside 0..{shape.num_classes - 1}")
