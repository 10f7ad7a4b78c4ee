"""What a loaded dataset is: its facts (:class:`DatasetInfo`), its train/validation/test
:class:`Splits`, and how a validation split is carved from the training images."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from search.data.augment import Augmentation
from space import InputShape

__all__ = ["DatasetError", "DatasetInfo", "DecodedArrays", "Pair", "Splits",
           "default_augmentation", "split_arrays", "stratified_split"]


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


class DecodedArrays(NamedTuple):
    """A dataset as decoded by a reader, before the validation split is carved."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    # A given validation set (an image folder's val/); None: carved from train by the seed.
    val_images: Tensor | None = None
    val_labels: Tensor | None = None
    skipped: tuple[str, ...] = ()  # files the reader could not decode


def default_augmentation(size: int) -> Augmentation:
    """The training-time augmentation of every dataset at ``size`` pixels."""
    # One rule for every dataset: CIFAR's RandomCrop(32, padding=4) and a flip.
    return Augmentation(pad=size // 8, flip=True)


def split_arrays(info: DatasetInfo, arrays: DecodedArrays, val_fraction: float,
                 seed: int) -> Splits:
    """``arrays`` as :class:`Splits`: a given validation set kept, else ``val_fraction`` of
    each class carved from the training images with ``seed``."""
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
