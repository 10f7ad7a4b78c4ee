"""Data: datasets by name as uint8 tensors, their splits, and batched augmentation.

Imports ``space`` only. ``load_dataset`` (:mod:`search.data.datasets`) dispatches to the
built-in readers (:mod:`search.data.builtin`) or an image folder (:mod:`search.data.folder`);
both decode once into the tensor cache (:mod:`search.data.tensor_cache`) and carve the
validation split (:mod:`search.data.splits`). This front re-exports the public names.
"""

from search.data.augment import Augmentation, Normalize, shuffled_batches
from search.data.builtin import FASHION_MNIST_ENV, make_synthetic, read_idx
from search.data.datasets import default_data_dir, load_dataset
from search.data.images import fit_square
from search.data.names import DATASETS, FOLDER_PREFIX, dataset_slug, is_dataset
from search.data.splits import DatasetError, DatasetInfo, Pair, Splits, stratified_split

__all__ = [
    "DATASETS",
    "FASHION_MNIST_ENV",
    "FOLDER_PREFIX",
    "Augmentation",
    "DatasetError",
    "DatasetInfo",
    "Normalize",
    "Pair",
    "Splits",
    "dataset_slug",
    "default_data_dir",
    "fit_square",
    "is_dataset",
    "load_dataset",
    "make_synthetic",
    "read_idx",
    "shuffled_batches",
    "stratified_split",
]
