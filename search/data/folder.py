"""Your own images as a dataset: ``load_dataset("folder:PATH")``.

Layouts:

* ``PATH/train/<class>/*``, and optionally ``PATH/val/<class>/*`` and ``PATH/test/<class>/*``
  (then no other folder may sit beside them);
* ``PATH/<class>/*`` (no folder named ``train``, ``val`` or ``test`` at the top).

A class folder may have sub-folders; symbolic links are followed, and a loop is an error.
Images are recognised by extension (:data:`IMAGE_EXTENSIONS`, any case); other files and
hidden names (``.DS_Store``, macOS's ``._x.jpg``) are ignored. Labels follow the sorted
class-folder names, as in torchvision's ``ImageFolder``; images follow their sorted paths.
``DatasetInfo.name`` holds the absolute path, so a report or export run from another
directory reloads the same data.

The rules:

* Test split: ``test/`` if present; otherwise :data:`TEST_FRACTION` of each class of the
  training images, drawn with the fixed :data:`TEST_SEED`. That split depends only on the
  folder's content, never on the search seed, so an export reloads exactly the test images
  no trial was selected on.
* Validation split: ``val/`` if present (``val_fraction`` is then ignored); otherwise
  ``val_fraction`` of the remaining training images, drawn with ``seed``, as for every
  dataset.
* Channels: 1 if every image is greyscale by its mode (L, LA, 1, I, I;16, I;16B, F), else
  3 (RGB; alpha dropped, palettes expanded).
* Pixel values: 8 bits, as in training. Wider greyscale is scaled from its mode's range
  (:func:`search.data.images.to_8bit`): 16-bit (I;16*, and I, as Pillow opens some 16-bit
  files) from 0..65535, float (F) from [0, 1]; an image with a value outside that range
  refuses the folder, naming the file.
* Size: ``input_size``, else 64 if the median shorter side is at least 64 pixels, else 32
  (:func:`default_size`). The shorter side is resized, then the centre cropped
  (:func:`search.data.fit_square`, as for Imagenette); JPEGs decode at a reduced scale
  when that still leaves at least ``input_size`` pixels.
* Undecodable images, and image names that are named pipes (FIFOs), are skipped with a
  one-line warning naming a few (the cache keeps the list), or refused with
  ``strict_images``.
* Normalisation: mean and std per channel of the training split's pixels.
* Memory: decoding needs :func:`memory_needed` bytes, checked against ``MemAvailable`` of
  ``/proc/meminfo`` from the image headers before any image is decoded.

Decoded images go to the tensor cache, ``<data root>/tensors/<slug>-<path hash>-<content
key>-<size>px.pt``, beside a ``.json`` holding the header facts (channels, default size).
The content key hashes every image's path, size and modification time, so a changed
folder is decoded again; files of the folder's earlier contents are then deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from search.data.images import GREY_RANGES, PixelRangeError, fit_square, to_8bit
from search.data.names import FOLDER_PREFIX, dataset_slug
from search.data.splits import (
    DatasetError,
    DatasetInfo,
    DecodedArrays,
    Splits,
    default_augmentation,
    split_arrays,
    stratified_split,
)
from search.data.tensor_cache import cached_arrays, folder_tag
from space import InputShape
from space.files import write_text_atomically
from space.jsonfile import open_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "TEST_FRACTION",
    "TEST_SEED",
    "FolderScan",
    "decode_image",
    "default_size",
    "load_folder",
    "memory_needed",
    "scan_folder",
]

IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif",
                              ".tiff", ".webp"})
TEST_FRACTION = 0.2  # of each class, carved when there is no test/ folder
TEST_SEED = 0
SPLITS = ("train", "val", "test")
_GREY_MODES = frozenset({"1", "L", "LA", *GREY_RANGES})
# Threads, one per core (at most 8), 64 images per task: Pillow decodes without holding
# the GIL, and processes lose to their start-up. measured: README "Measured"
# (benchmarks/bench_folder_decode.py).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_WORKERS = min(8, _CORES or 1)
_CHUNK = 64
# Per decoding thread, bytes per pixel of the largest image: decoded RGBA (4) plus
# Pillow's resize buffers (up to 3 more images of that size).
_DECODE_BYTES_PER_PIXEL = 16
_EXAMPLES = 3  # undecodable files named in a message
_FORMAT = 2  # part of every cache key: bump it when decoding changes

T = TypeVar("T")


@dataclass(frozen=True)
class FolderScan:
    """An image folder's layout and files, found without opening an image."""

    root: Path  # absolute
    layout: str  # "split" (train/ val/ test/) or "flat" (class folders at the top)
    classes: tuple[str, ...]  # sorted; label i is classes[i]
    # split -> (image path relative to root, label), by label then path; plain strings,
    # as Path objects made scanning 100k files several times slower.
    files: dict[str, list[tuple[str, int]]]
    key: str  # hash of the names, sizes and modification times of every image

    def identity(self) -> dict[str, str]:
        """The facts of a dataset ``source`` that name this content: equal identities, the
        same images in the same splits (the key covers the carving rule too)."""
        return {"path": str(self.root), "layout": self.layout, "content_key": self.key}

    @property
    def paths(self) -> list[str]:
        """Every image's absolute path, split after split in the order of :data:`SPLITS`."""
        root = str(self.root)
        return [os.path.join(root, name) for split in SPLITS for name, _ in
                self.files.get(split, ())]


def scan_folder(path: str | Path) -> FolderScan:
    """The layout of the image folder at ``path``; :class:`DatasetError` if it is unusable."""
    root = Path(os.path.abspath(os.path.expanduser(path)))
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"image folder {root} {problem}")
    top = _subfolders(root)
    if "train" in top:
        others = sorted(top.keys() - set(SPLITS))
        if others:
            raise DatasetError(f"{root} has train/ and also {', '.join(others)}: put the class "
                               f"folders under train/ (and val/, test/), or remove train/")
        layout, split_dirs = "split", {split: top[split] for split in SPLITS if split in top}
    elif top.keys() & {"val", "test"}:
        given = "/ and ".join(sorted(top.keys() & {"val", "test"}))
        raise DatasetError(f"{root} has {given}/ but no train/; add train/<class>/ folders, "
                           f"or rename the class folder")
    else:
        layout, split_dirs = "flat", {"train": root}

    classes: tuple[str, ...] = ()
    files: dict[str, list[tuple[str, int]]] = {}
    prefix = os.path.join(root, "")  # every path found starts with it
    digest = hashlib.sha256(f"{_FORMAT} {TEST_FRACTION} {TEST_SEED}".encode())
    for split, folder in split_dirs.items():
        class_dirs = _subfolders(folder)
        if not class_dirs:
            raise DatasetError(f"{folder} has no class folders; expected {folder}/<class>/ "
                               f"folders of images")
        if not classes:
            classes = tuple(sorted(class_dirs))
            if len(classes) < 2:
                raise DatasetError(f"{folder} has only 1 class folder ({classes[0]}); a "
                                   f"classifier needs at least 2")
        elif set(class_dirs) != set(classes):
            missing = ", ".join(sorted(set(classes) - set(class_dirs))) or "none"
            extra = ", ".join(sorted(set(class_dirs) - set(classes))) or "none"
            raise DatasetError(f"{folder} has other classes than {split_dirs['train']}: "
                               f"missing {missing}; not in training {extra}")
        files[split] = []
        for label, name in enumerate(classes):
            images = _images_under(class_dirs[name])
            if not images:
                raise DatasetError(f"class folder {class_dirs[name]} has no images (any of "
                                   f"{' '.join(sorted(IMAGE_EXTENSIONS))})")
            for image, size, mtime in images:
                relative = image.removeprefix(prefix)
                files[split].append((relative, label))
                digest.update(f"{split}\0{relative}\0{size}\0{mtime}\n"
                              .encode(errors="surrogateescape"))
    return FolderScan(root, layout, classes, files, digest.hexdigest()[:16])


def default_size(shorter_sides: Sequence[int]) -> int:
    """64 if the median shorter side is at least 64 pixels, else 32: the two sizes this
    project's networks are built and budgeted for; larger via ``input_size``."""
    return 64 if shorter_sides and statistics.median(shorter_sides) >= 64 else 32


def memory_needed(count: int, channels: int, size: int, max_pixels: int) -> int:
    """Bytes to decode ``count`` images to uint8 ``channels x size x size`` and split them:
    the images twice (train/val/test are copies) plus, per decoding thread, 16 bytes per
    pixel of the largest image (``max_pixels``, from its header)."""
    return 2 * count * channels * size * size + _WORKERS * max_pixels * _DECODE_BYTES_PER_PIXEL


def load_folder(
    path: str,
    data_dir: Path,
    *,
    val_fraction: float,
    seed: int,
    input_size: int | None,
    strict_images: bool,
) -> Splits:
    """The image folder at ``path`` as :class:`Splits` (see the module's rules), decoded once
    into the tensor cache under ``data_dir``. Called by :func:`search.data.load_dataset`."""
    scan = scan_folder(path)
    name = FOLDER_PREFIX + str(scan.root)
    stem = f"{dataset_slug(name)}-{folder_tag(scan.root)}"
    cache = data_dir / "tensors" / f"{stem}-{scan.key}"
    facts = _header_facts(scan, cache.with_name(f"{cache.name}.json"))
    size = facts["default_size"] if input_size is None else input_size
    shape = InputShape(facts["channels"], size, len(scan.classes))
    arrays = cached_arrays(cache.with_name(f"{cache.name}-{size}px.pt"), shape,
                     lambda: _decode_folder(scan, shape, facts["max_pixels"]))
    _forget_older(cache.parent, stem, scan.key)
    if arrays.skipped:
        count, named = len(arrays.skipped), _some(arrays.skipped)
        if strict_images:
            raise DatasetError(f"{scan.root}: {count} image(s) cannot be decoded: {named}")
        warnings.warn(f"{scan.root}: skipped {count} image(s) that cannot be decoded: {named}",
                      stacklevel=3)
    info = DatasetInfo(name, shape, (), (), default_augmentation(size), scan.classes)
    splits = split_arrays(info, arrays, val_fraction, seed)
    mean, std = _channel_stats(splits.train[0])
    carved = {"from": "carved", "seed": seed, "fraction": val_fraction}
    source = {
        **scan.identity(),
        "images": {split: len(pair[1]) for split, pair in
                   zip(SPLITS, (splits.train, splits.val, splits.test), strict=True)},
        "val": {"from": "val/"} if "val" in scan.files else carved,
        "test": {"from": "test/"} if "test" in scan.files else
                {"from": "carved", "seed": TEST_SEED, "fraction": TEST_FRACTION},
        "skipped": len(arrays.skipped),
        "skipped_examples": list(arrays.skipped[:10]),
    }
    return replace(splits, info=replace(info, mean=mean, std=std, source=source))


# --- scanning -----------------------------------------------------------------------------

def _subfolders(folder: Path) -> dict[str, Path]:
    """Non-hidden folders (or links to folders) directly in ``folder``, by name."""
    return {entry.name: folder / entry.name for entry in _entries(folder)
            if not entry.name.startswith(".") and entry.is_dir()}


def _entries(folder: str | Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as err:
        raise DatasetError(f"cannot read {folder}: {err.strerror or err}") from None


def _images_under(folder: Path) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of the image files under ``folder``, sorted by path."""
    found = []
    # Depth first, each folder with the real paths of the folders above it: a folder that
    # is its own ancestor is a symlink loop; one reached twice by links is read once.
    stack: list[tuple[str, frozenset[str]]] = [(str(folder), frozenset())]
    seen: set[str] = set()
    while stack:
        current, above = stack.pop()
        real = os.path.realpath(current)
        if real in above:
            raise DatasetError(f"symlink loop: {current} leads back to {real}")
        if real in seen:
            continue
        seen.add(real)
        for entry in _entries(current):
            if entry.name.startswith("."):
                continue
            path = os.path.join(current, entry.name)
            if entry.is_dir():
                stack.append((path, above | {real}))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                try:
                    stat = entry.stat()
                    found.append((path, stat.st_size, stat.st_mtime_ns))
                except OSError:  # a dangling link: listed, and skipped when decoding
                    found.append((path, -1, -1))
    return sorted(found)


# --- header facts, memory ---------------------------------------------------------------

def _header_facts(scan: FolderScan, path: Path) -> dict[str, int]:
    """Channels, default size and largest image (pixels) from every image's header; kept
    at ``path`` so that loading from the cache opens no image."""
    try:
        facts = json.loads(path.read_text())
        if isinstance(facts, dict) and {"channels", "default_size", "max_pixels"} <= facts.keys():
            return facts
    except (OSError, ValueError):
        pass  # absent or damaged: read the headers again
    headers = [h for h in _parallel(_read_header, scan.paths, "reading image headers")
               if h is not None]
    facts = {
        "channels": 1 if headers and all(mode in _GREY_MODES for mode, _, _ in headers) else 3,
        "default_size": default_size([min(w, h) for _, w, h in headers]),
        "max_pixels": max((w * h for _, w, h in headers), default=0),
    }
    try:
        write_text_atomically(path, json.dumps(facts))
    except OSError as err:
        warnings.warn(f"could not cache {path.name} in {path.parent}: {err}", stacklevel=3)
    return facts


def _read_header(path: str) -> tuple[str, int, int] | None:
    try:
        with open_file(path, "image") as file, Image.open(file) as image:  # the header only
            return image.mode, *image.size
    except Exception:  # Pillow's plugins raise many types; decoding will skip the file
        return None


def _mem_available() -> int | None:
    """``MemAvailable`` in bytes, or None where ``/proc/meminfo`` does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_memory(scan: FolderScan, shape: InputShape, max_pixels: int) -> None:
    count = len(scan.paths)
    needed = memory_needed(count, shape.in_channels, shape.input_size, max_pixels)
    available = _mem_available()
    if available is not None and needed > available:
        raise DatasetError(
            f"{scan.root}: {count} images at {'x'.join(map(str, shape.chw))} need about "
            f"{_gib(needed)} of memory to decode and split, but only {_gib(available)} is "
            f"available; use a smaller input size or fewer images")


def _gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


# --- decoding -------------------------------------------------------------------------------

def _decode_folder(scan: FolderScan, shape: InputShape, max_pixels: int) -> DecodedArrays:
    _check_memory(scan, shape, max_pixels)
    paths = scan.paths
    mode = "L" if shape.in_channels == 1 else "RGB"
    images = torch.empty(len(paths), *shape.chw, dtype=torch.uint8)

    def decode(index: int) -> bool:
        image = decode_image(paths[index], mode, shape.input_size)
        if image is not None:
            images[index] = image
        return image is not None

    decoded = torch.tensor(_parallel(decode, range(len(paths)), "decoding images"))
    labels = torch.tensor([label for split in SPLITS for _, label in scan.files.get(split, ())],
                          dtype=torch.int64)
    # Indices of the decoded images of each split, in path order.
    chosen, start = {}, 0
    for split in SPLITS:
        span = torch.arange(start, start + len(scan.files.get(split, ())))
        chosen[split], start = span[decoded[span]], start + len(span)
    missing = sorted(set(scan.classes) - {scan.classes[c] for c in labels[chosen["train"]]})
    if missing:
        raise DatasetError(f"{scan.root}: no image of class {', '.join(missing)} can be decoded")
    if "test" not in scan.files:
        rest, test = stratified_split(labels[chosen["train"]], TEST_FRACTION, TEST_SEED)
        chosen["train"], chosen["test"] = chosen["train"][rest], chosen["train"][test]
    # Each split indexed once from the decoded block: the peak is twice the images, as
    # memory_needed says, and each split is its own storage in the cache file.
    train, val, test = ((images[chosen[split]], labels[chosen[split]]) for split in SPLITS)
    names = [name for split in SPLITS for name, _ in scan.files.get(split, ())]
    skipped = tuple(names[i] for i in torch.nonzero(~decoded).flatten().tolist())
    return DecodedArrays(*train, *test, *(val if "val" in scan.files else (None, None)), skipped)


def decode_image(path: str, mode: str, size: int) -> Tensor | None:
    """One image as uint8 ``(C, size, size)`` in ``mode`` (L or RGB); None if it cannot be
    read or decoded; :class:`DatasetError` naming it if its values are outside its mode's
    range (see :func:`search.data.images.to_8bit`)."""
    try:
        with open_file(path, "image") as file, Image.open(file) as image:
            # JPEG only: decode at 1/2, 1/4 or 1/8 scale when both sides stay >= size.
            image.draft(mode, (size, size))
            return fit_square(to_8bit(image, mode), size)
    except PixelRangeError as err:
        raise DatasetError(f"{path}: {err}; save it as 8 or 16 bits, or as floats in "
                           "[0, 1]") from None
    except Exception:  # Pillow's plugins raise many types (OSError, SyntaxError, struct.error)
        return None


def _parallel(work: Callable[[Any], T], items: Sequence[Any], what: str) -> list[T]:
    """``[work(item) for item in items]`` in threads (see ``_WORKERS``), with a progress bar
    on stderr."""
    chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    results: list[T] = []
    pool = ThreadPoolExecutor(_WORKERS)
    try:
        with tqdm(total=len(items), desc=what, unit="img") as bar:
            for done in pool.map(lambda chunk: [work(item) for item in chunk], chunks):
                results += done
                bar.update(len(done))
    finally:
        # On Ctrl-C or an error, wait for the running chunks only, not for the whole queue.
        pool.shutdown(cancel_futures=True)
    return results


# --- statistics, files ----------------------------------------------------------------------

def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of uint8 images, on the [0, 1] scale."""
    # From a histogram of each channel's 256 levels: exact, and faster than summing floats
    # (20,000 images of 3x64x64 here: 0.5 s against 2.4 s).
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    for chunk in images.split(4096):
        for channel in range(channels):
            counts[channel] += torch.bincount(chunk[:, channel].reshape(-1), minlength=256)
    levels = torch.arange(256, dtype=torch.float64)
    total = counts.sum(1).clamp(min=1).double()
    mean = (counts * levels).sum(1) / total
    # At least one grey level: a constant channel must not divide by zero when normalised.
    std = ((counts * levels**2).sum(1) / total - mean**2).clamp(min=1.0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


def _forget_older(folder: Path, stem: str, key: str) -> None:
    """Delete the cache files of this folder's earlier contents (they can never hit)."""
    for path in folder.glob(f"{stem}-*"):
        if not path.name.startswith(f"{stem}-{key}"):
            path.unlink(missing_ok=True)


def _some(names: Sequence[str]) -> str:
    more = len(names) - _EXAMPLES
    return ", ".join(names[:_EXAMPLES]) + (f" and {more} more" if more > 0 else "")
