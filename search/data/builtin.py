"""The built-in datasets: CIFAR-10/100 and Imagenette through torchvision, Fashion-MNIST
from its idx files, and a synthetic task generated from a seed."""

from __future__ import annotations

import contextlib
import functools
import gzip
import math
import os
import socket
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from search.data.images import fit_square, resize_images
from search.data.splits import (
    DatasetError,
    DatasetInfo,
    DecodedArrays,
    Pair,
    Splits,
    default_augmentation,
    split_arrays,
)
from search.data.tensor_cache import cached_arrays, folder_tag
from space import DATASET_SHAPES
from space.footprint import check_dataset_fits

__all__ = ["DEBIAN_FASHION_MNIST", "DOWNLOAD_TIMEOUT_S", "FASHION_MNIST_ENV", "load_builtin",
           "make_synthetic", "read_idx"]

FASHION_MNIST_ENV = "CSE_NAS_FASHION_MNIST_DIR"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# torchvision opens URLs without a timeout; a silently dropped connection would hang a
# trial for ever. Seconds per connect or read, not for the whole download.
DOWNLOAD_TIMEOUT_S = 30.0

# Per-channel mean and std of the training images, for normalisation; the input shapes
# and class counts are ``space.DATASET_SHAPES``.
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenette": (_IMAGENET_MEAN, _IMAGENET_STD),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}

_SYNTHETIC_TRAIN, _SYNTHETIC_TEST = 2000, 500  # images



def load_builtin(name: str, root: Path, *, val_fraction: float, seed: int,
                 input_size: int | None) -> Splits:
    """The built-in dataset ``name`` (decoded into ``root`` once), split by ``seed``."""
    mean, std = _STATS[name]
    shape = DATASET_SHAPES[name]
    if input_size is not None:
        shape = replace(shape, input_size=input_size)
    check_dataset_fits(name, shape)  # before any image is decoded or resized
    size = shape.input_size
    info = DatasetInfo(
        name=name,
        shape=shape,
        mean=mean,
        std=std,
        augment=default_augmentation(size),
    )
    if name == "synthetic":
        arrays = _synthetic(size)
    else:
        arrays = cached_arrays(root / "tensors" / f"{name}{_source_tag(name)}-{size}px.pt",
                               shape, functools.partial(_READERS[name], root, size))
    return split_arrays(info, arrays, val_fraction, seed)


# --- synthetic --------------------------------------------------------------------------

def make_synthetic(
    count: int, *, input_size: int = 32, num_classes: int = 10, seed: int = 0
) -> Pair:
    """``count`` RGB uint8 images whose class sets their colour, under heavy pixel noise.

    The class colours are the same for every ``seed`` (the seed draws labels and noise),
    so sets drawn with different seeds are samples of one task. Colour survives cropping
    and flipping, so the default augmentation keeps labels right.
    """
    palette = torch.Generator().manual_seed(0)
    colours = torch.empty(num_classes, 3, 1, 1).uniform_(40, 215, generator=palette)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(num_classes, (count,), generator=generator)
    noise = torch.randn(count, 3, input_size, input_size, generator=generator) * 48
    images = (colours[labels] + noise).round_().clamp_(0, 255).to(torch.uint8)
    return images, labels


def _synthetic(size: int) -> DecodedArrays:
    # Fixed seeds: the dataset is one fixed task; the split seed only re-divides it.
    train = make_synthetic(_SYNTHETIC_TRAIN, input_size=size, seed=0)
    test = make_synthetic(_SYNTHETIC_TEST, input_size=size, seed=1)
    return DecodedArrays(*train, *test)


# --- downloads ----------------------------------------------------------------------------

@contextlib.contextmanager
def _download(name: str, hint: str) -> Iterator[None]:
    """Turn a failed download into a one-line DatasetError; bound every network wait."""
    # Process-wide, as torchvision's downloader takes no timeout and opens its URLs with the
    # socket default. Acceptable because downloads happen while a command loads its
    # dataset, before any trial runs (trials get the splits from the driver, never
    # download), and the previous default is back when the download ends.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except (OSError, RuntimeError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DatasetError(f"{name}: not found and the download failed ({reason}); {hint}") \
            from None
    finally:
        socket.setdefaulttimeout(previous)


def _read_cifar(name: str, root: Path, size: int) -> DecodedArrays:
    import torchvision  # imported here: only the datasets torchvision provides need it

    cls, archive = {
        "cifar10": (torchvision.datasets.CIFAR10, "cifar-10-python.tar.gz"),
        "cifar100": (torchvision.datasets.CIFAR100, "cifar-100-python.tar.gz"),
    }[name]
    hint = f"put {archive} (https://www.cs.toronto.edu/~kriz/cifar.html) in {root}"
    with _download(name, hint):
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)

    def pair(dataset: torchvision.datasets.CIFAR10) -> Pair:
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        return resize_images(images, size), torch.tensor(dataset.targets, dtype=torch.int64)

    return DecodedArrays(*pair(train), *pair(test))


def _read_imagenette(root: Path, size: int) -> DecodedArrays:
    import torchvision

    # The smallest published variant that is still at least `size` pixels on its short side.
    variant = "160px" if size <= 160 else "320px" if size <= 320 else "full"
    archive = {"160px": "imagenette2-160.tgz", "320px": "imagenette2-320.tgz",
               "full": "imagenette2.tgz"}[variant]
    transform = functools.partial(fit_square, size=size)
    hint = f"put {archive} (https://github.com/fastai/imagenette) in {root}"
    pairs = []
    for split in ("train", "val"):
        with _download("imagenette", hint):
            dataset = torchvision.datasets.Imagenette(
                str(root), split=split, size=variant, download=True, transform=transform
            )
        images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
        pairs.append((torch.stack(images), torch.tensor(labels, dtype=torch.int64)))
    return DecodedArrays(*pairs[0], *pairs[1])


_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FIX_FASHION = (f"reinstall it (apt-get install --reinstall dataset-fashion-mnist) or point "
                f"{FASHION_MNIST_ENV} at a good copy")


def read_idx(path: Path, ndim: int) -> Tensor:
    """An idx file of unsigned bytes (``.gz`` or plain) as a uint8 tensor of ``ndim`` dims.

    Raises :class:`DatasetError` naming the file if it is unreadable, truncated or not idx.
    """
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # gzip's errors for damaged files
        raise DatasetError(f"{path} is corrupt or truncated ({err}); {_FIX_FASHION}") from None
    header = 4 + 4 * ndim
    # Magic number: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise DatasetError(f"{path} is not an idx file of {ndim}-D unsigned bytes; "
                           f"{_FIX_FASHION}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != math.prod(shape):
        raise DatasetError(f"{path} is truncated: {len(data) - header} bytes of data for "
                           f"shape {shape}; {_FIX_FASHION}")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
                            .copy())


def _idx_files(folder: Path) -> list[Path] | None:
    """The four files in ``folder`` (each ``.gz`` or plain), or None if any is missing."""
    found = []
    for stem in _FASHION_FILES:
        candidates = [folder / f"{stem}.gz", folder / stem]
        existing = [path for path in candidates if path.is_file()]
        if not existing:
            return None
        found.append(existing[0])
    return found


def _read_fashion_mnist(root: Path, size: int) -> DecodedArrays:
    override = os.environ.get(FASHION_MNIST_ENV)
    if override:
        files = _idx_files(Path(override))
        if files is None:
            raise DatasetError(f"fashion-mnist: {override} (from {FASHION_MNIST_ENV}) lacks "
                               f"the idx files {', '.join(_FASHION_FILES)} (.gz or plain)")
    else:
        downloaded = root / "FashionMNIST" / "raw"  # where torchvision puts them
        files = _idx_files(DEBIAN_FASHION_MNIST) or _idx_files(downloaded)
        if files is None:
            import torchvision

            hint = f"apt-get install dataset-fashion-mnist (files in {DEBIAN_FASHION_MNIST})"
            with _download("fashion-mnist", hint):
                torchvision.datasets.FashionMNIST(str(root), download=True)
            files = _idx_files(downloaded)
            if files is None:
                raise DatasetError(f"fashion-mnist: download left no idx files in {downloaded}")
    train_images, train_labels, test_images, test_labels = (
        read_idx(path, ndim) for path, ndim in zip(files, (3, 1, 3, 1), strict=True)
    )
    return DecodedArrays(
        resize_images(train_images.unsqueeze(1), size), train_labels.long(),
        resize_images(test_images.unsqueeze(1), size), test_labels.long(),
    )


def _source_tag(name: str) -> str:
    """``-<hash of the folder>`` when Fashion-MNIST comes from a folder the user named, else
    nothing: a copy elsewhere is decoded into its own cache file, not served the default
    one's. By path, not content, so that the cache still answers once the files are gone."""
    override = os.environ.get(FASHION_MNIST_ENV) if name == "fashion-mnist" else None
    if not override:
        return ""
    return "-" + folder_tag(Path(os.path.abspath(override)))


_READERS: dict[str, Callable[[Path, int], DecodedArrays]] = {
    "cifar10": functools.partial(_read_cifar, "cifar10"),
    "cifar100": functools.partial(_read_cifar, "cifar100"),
    "imagenette": _read_imagenette,
    "fashion-mnist": _read_fashion_mnist,
}
