"""Datasets by name, as uint8 tensors with a seeded, stratified train/validation split.

``load_dataset("cifar10")`` gives :class:`Splits`: ``(images, labels)`` pairs of CPU
tensors, images uint8 ``(N, C, H, W)`` and labels int64. The training code moves them to
its device once and augments there (see :mod:`search.augment`).

One data root (``default_data_dir()``, or ``data_dir=``) holds the downloads and a cache of
decoded tensors (``<root>/tensors/<name>-<size>px.pt``), so after the first use a dataset
loads in about a second. The validation split is carved from the training set; the test
split is kept apart for the final evaluation of retrained architectures.

Sources:

* ``cifar10``, ``cifar100``: torchvision, downloaded into the data root.
* ``imagenette``: torchvision's Imagenette (its ``val`` split is our test split), resized
  once (shorter side, then centre crop) to ``input_size``, 64 by default.
* ``fashion-mnist``: the idx ``.gz`` files of the Debian package ``dataset-fashion-mnist``
  in ``/usr/share/datasets/fashion-mnist``, or the directory named by the environment
  variable ``CSE_NAS_FASHION_MNIST_DIR``; otherwise downloaded by torchvision.
* ``synthetic``: generated from a fixed seed, tiny, learnable (for tests and smoke runs).
* ``folder:PATH``: your own images, ``PATH/<class>/*`` or ``PATH/train/<class>/*`` (and
  ``val/``, ``test/``); the rules are in :mod:`search.image_folder`.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import math
import os
import re
import socket
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from search.augment import Augmentation
from space import DATASET_SHAPES, InputShape
from space.footprint import check_dataset_fits

__all__ = [
    "DATASETS",
    "FASHION_MNIST_ENV",
    "FOLDER_PREFIX",
    "DatasetError",
    "DatasetInfo",
    "Splits",
    "dataset_slug",
    "default_data_dir",
    "fit_square",
    "is_dataset",
    "load_dataset",
    "make_synthetic",
    "read_idx",
    "stratified_split",
]

FASHION_MNIST_ENV = "CSE_NAS_FASHION_MNIST_DIR"
FOLDER_PREFIX = "folder:"  # "folder:PATH" names an image folder
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# torchvision opens URLs without a timeout; a silently dropped connection would hang a
# trial for ever. Seconds per connect or read, not for the whole download.
DOWNLOAD_TIMEOUT_S = 30.0


class DatasetError(ValueError):
    """A dataset that is unknown, missing or damaged; the message is one line saying why."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a network and the training loop need to know about a dataset."""

    name: str
    shape: InputShape  # what a network for it is built for
    mean: tuple[float, ...]  # per channel, of pixel values scaled to [0, 1]
    std: tuple[float, ...]  # per channel, same scale
    augment: Augmentation  # default training-time augmentation
    class_names: tuple[str, ...] | None = None  # label i is class_names[i]; None: unnamed
    # Where the splits came from, JSON-ready, for study attributes and exports (image
    # folders: path, layout, content key, test and validation rules, skipped files).
    source: dict[str, Any] | None = field(default=None, compare=False)

    def normalization(self) -> dict[str, Any]:
        """How a network trained on this data expects its input (for an export's
        ``model.json``)."""
        return {"mean": list(self.mean), "std": list(self.std),
                "input": "uint8 pixels / 255, then (x - mean) / std"}


Pair = tuple[Tensor, Tensor]  # (images uint8 (N, C, H, W), labels int64 (N,))


@dataclass(frozen=True)
class Splits:
    """Train, validation and test ``(images, labels)`` pairs of CPU tensors."""

    info: DatasetInfo
    train: Pair
    val: Pair
    test: Pair

    def for_trials(self) -> Splits:
        """Without the test split, which search trials never touch: what Ray ships to them."""
        images, labels = self.test
        return replace(self, test=(images[:0], labels[:0]))

    def merged(self) -> Splits:
        """Train on train + validation (for final retraining); the validation split empty."""
        images, labels = self.val
        return Splits(
            info=self.info,
            train=(torch.cat([self.train[0], images]), torch.cat([self.train[1], labels])),
            val=(images[:0], labels[:0]),
            test=self.test,
        )


class _Arrays(NamedTuple):
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    # A given validation set (an image folder's val/); None: carved from train by the seed.
    val_images: Tensor | None = None
    val_labels: Tensor | None = None
    skipped: tuple[str, ...] = ()  # files the reader could not decode


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
DATASETS: tuple[str, ...] = tuple(DATASET_SHAPES)

_SYNTHETIC_TRAIN, _SYNTHETIC_TEST = 2000, 500  # images


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/cse-nas``, or ``~/.cache/cse-nas`` when it is unset."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cse-nas"


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
        from search.image_folder import load_folder  # here: that module imports this one

        return load_folder(name.removeprefix(FOLDER_PREFIX), root, val_fraction=val_fraction,
                           seed=seed, input_size=input_size, strict_images=strict_images)
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
        augment=_augmentation(size),
    )
    if name == "synthetic":
        arrays = _synthetic(size)
    else:
        arrays = _cached(root / "tensors" / f"{name}-{size}px.pt", shape,
                         functools.partial(_READERS[name], root, size))
    return _split(info, arrays, val_fraction, seed)


def _augmentation(size: int) -> Augmentation:
    # One rule for every dataset: CIFAR's RandomCrop(32, padding=4) and a flip.
    return Augmentation(pad=size // 8, flip=True)


def _split(info: DatasetInfo, arrays: _Arrays, val_fraction: float, seed: int) -> Splits:
    images, labels = arrays.train_images, arrays.train_labels
    test = (arrays.test_images, arrays.test_labels)
    if arrays.val_images is not None and arrays.val_labels is not None:
        return Splits(info=info, train=(images, labels),
                      val=(arrays.val_images, arrays.val_labels), test=test)
    rest, val = stratified_split(labels, val_fraction, seed)
    return Splits(info=info, train=(images[rest], labels[rest]),
                  val=(images[val], labels[val]), test=test)


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(rest, part)`` of ``labels``: ``part`` holds ``round(fraction * n)`` of
    each class's ``n`` items, drawn with ``seed``; both sorted, disjoint, covering all."""
    generator = torch.Generator().manual_seed(seed)
    part = []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        chosen = torch.randperm(len(members), generator=generator)[: round(fraction * len(members))]
        part.append(members[chosen])
    in_part = torch.zeros(len(labels), dtype=torch.bool)
    if part:
        in_part[torch.cat(part)] = True
    return torch.nonzero(~in_part).flatten(), torch.nonzero(in_part).flatten()


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


def _synthetic(size: int) -> _Arrays:
    # Fixed seeds: the dataset is one fixed task; the split seed only re-divides it.
    train = make_synthetic(_SYNTHETIC_TRAIN, input_size=size, seed=0)
    test = make_synthetic(_SYNTHETIC_TEST, input_size=size, seed=1)
    return _Arrays(*train, *test)


# --- the decoded-tensor cache -------------------------------------------------------------

def _cached(path: Path, shape: InputShape, read: Callable[[], _Arrays]) -> _Arrays:
    """The arrays cached at ``path``, else ``read()`` checked against ``shape`` and cached."""
    if path.is_file():
        try:
            arrays = _Arrays(**torch.load(path, weights_only=True))
            _check(shape, arrays, str(path))
            return arrays
        except Exception:  # whatever the damage (pickle, zip, shapes): rebuild the file
            warnings.warn(f"{path}: damaged cache file, decoding the dataset again", stacklevel=3)
    arrays = read()
    _check(shape, arrays, path.stem)
    # Write then rename, so that parallel trials never read a half-written file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only the fields that are set, so that built-in datasets' files stay readable by
        # the versions before image folders (a data root may be shared).
        torch.save({key: value for key, value in arrays._asdict().items()
                    if isinstance(value, Tensor) or value}, partial)
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)  # a full disk must not keep half a file
        warnings.warn(f"could not cache {path.stem} in {path.parent}: {err}", stacklevel=3)
    return arrays


def _check(shape: InputShape, arrays: _Arrays, where: str) -> None:
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


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    # In chunks: CIFAR as float at 64x64 would take 2.4 GB at once.
    chunks = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
        .round_().clamp_(0, 255).to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(chunks)


def fit_square(image: Image.Image, size: int) -> Tensor:
    """A loaded L or RGB image as uint8 ``(C, size, size)``: the shorter side resized to
    ``size`` (bilinear, antialiased), then the centre cropped."""
    width, height = image.size
    short = min(width, height)
    # The longer side truncated, as torchvision's Resize(size) does.
    resized = (size, int(size * height / short)) if width == short else \
        (int(size * width / short), size)
    if resized != image.size:
        image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (round((side - size) / 2) for side in resized)  # as torchvision's CenterCrop
    pixels = torch.from_numpy(np.array(image.crop((left, top, left + size, top + size))))
    return pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)


# --- downloads ----------------------------------------------------------------------------

@contextlib.contextmanager
def _download(name: str, hint: str) -> Iterator[None]:
    """Turn a failed download into a one-line DatasetError; bound every network wait."""
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


def _read_cifar(name: str, root: Path, size: int) -> _Arrays:
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
        return _resize(images, size), torch.tensor(dataset.targets, dtype=torch.int64)

    return _Arrays(*pair(train), *pair(test))


def _read_imagenette(root: Path, size: int) -> _Arrays:
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
    return _Arrays(*pairs[0], *pairs[1])


# --- fashion-mnist (idx files) ------------------------------------------------------------

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


def _read_fashion_mnist(root: Path, size: int) -> _Arrays:
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
    return _Arrays(
        _resize(train_images.unsqueeze(1), size), train_labels.long(),
        _resize(test_images.unsqueeze(1), size), test_labels.long(),
    )


_READERS: dict[str, Callable[[Path, int], _Arrays]] = {
    "cifar10": functools.partial(_read_cifar, "cifar10"),
    "cifar100": functools.partial(_read_cifar, "cifar100"),
    "imagenette": _read_imagenette,
    "fashion-mnist": _read_fashion_mnist,
}
