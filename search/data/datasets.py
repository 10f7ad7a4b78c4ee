"""Datasets by name, as uint8 tensors with a seeded, stratified train/validation split.

``load_dataset("cifar10")`` gives :class:`Splits`: ``(images, labels)`` pairs of CPU
tensors, images uint8 ``(N, C, H, W)`` and labels int64. The training code moves them to
its device once and augments there (see :mod:`search.data.augment`).

One data root (``default_data_dir()``, or ``data_dir=``) holds the downloads and a cache of
decoded tensors (``<root>/tensors/<name>-<size>px.pt``; Fashion-MNIST read from the folder
``CSE_NAS_FASHION_MNIST_DIR`` names adds that folder's hash after the name), so after the
first use a dataset loads in about a second. The validation split is carved from the
training set; the test split is kept apart for the final evaluation of retrained
architectures.

Sources:

* ``cifar10``, ``cifar100``: torchvision, downloaded into the data root.
* ``imagenette``: torchvision's Imagenette (its ``val`` split is our test split), resized
  once (shorter side, then centre crop) to ``input_size``, 64 by default.
* ``fashion-mnist``: the idx ``.gz`` files of the Debian package ``dataset-fashion-mnist``
  in ``/usr/share/datasets/fashion-mnist``, or the directory named by the environment
  variable ``CSE_NAS_FASHION_MNIST_DIR``; otherwise downloaded by torchvision.
* ``synthetic``: generated from a fixed seed, tiny, learnable (for tests and smoke runs).
* ``folder:PATH``: your own images, ``PATH/<class>/*`` or ``PATH/train/<class>/*`` (and
  ``val/``, ``test/``); the rules are in :mod:`search.data.folder`.
"""

from __future__ import annotations

from pathlib import Path

from search.data.builtin import load_builtin
from search.data.folder import load_folder
from search.data.names import DATASETS, FOLDER_PREFIX, is_dataset
from search.data.splits import DatasetError, Splits
from space.files import cache_root

__all__ = ["default_data_dir", "load_dataset"]


def default_data_dir() -> Path:
    """The data root when none is given: the project's cache folder
    (:func:`space.files.cache_root`)."""
    return cache_root()


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    input_size: int | None = None,
    strict_images: bool = False,
) -> Splits:
    """The named dataset, its training set split into train and validation by ``seed``.

    ``val_fraction`` of every class goes to validation (0 leaves it empty). ``input_size``
    resizes the images once (and is cached); ``None`` keeps the dataset's default.
    ``strict_images`` makes an image folder with an undecodable image an error (by default
    such images are skipped with a warning); other datasets ignore it.
    Raises :class:`DatasetError` if the dataset is unknown, missing or damaged.
    """
    if not is_dataset(name):
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                           f"or {FOLDER_PREFIX}PATH")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if name.startswith(FOLDER_PREFIX):
        return load_folder(name.removeprefix(FOLDER_PREFIX), root, val_fraction=val_fraction,
                           seed=seed, input_size=input_size, strict_images=strict_images)
    return load_builtin(name, root, val_fraction=val_fraction, seed=seed, input_size=input_size)
