from __future__ import annotations

import gzip
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from search.data import (
    DATASETS,
    FASHION_MNIST_ENV,
    DatasetError,
    default_data_dir,
    load_dataset,
    make_synthetic,
    stratified_split,
)
from search.data.augment import Augmentation, Normalize, random_crop_flip, shuffled_batches
from search.data.tensor_cache import folder_tag

# --- splits ------------------------------------------------------------------------------


def test_stratified_split_is_disjoint_covering_and_stratified():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[torch.randperm(100)]
    rest, part = stratified_split(labels, 0.1, seed=0)
    assert set(rest.tolist()).isdisjoint(part.tolist())
    assert sorted(rest.tolist() + part.tolist()) == list(range(100))
    assert torch.bincount(labels[part], minlength=3).tolist() == [5, 3, 2]


def test_stratified_split_depends_on_seed_only():
    labels = torch.arange(200) % 4
    assert torch.equal(stratified_split(labels, 0.25, 7)[1], stratified_split(labels, 0.25, 7)[1])
    assert not torch.equal(stratified_split(labels, 0.25, 7)[1],
                           stratified_split(labels, 0.25, 8)[1])


def test_load_dataset_splits_train_set_by_class_and_keeps_test_apart():
    splits = load_dataset("synthetic", val_fraction=0.2, seed=3, input_size=8)
    images, labels = make_synthetic(2000, input_size=8, seed=0)  # the training set
    rest, val = stratified_split(labels, 0.2, seed=3)
    assert torch.equal(splits.val[0], images[val]) and torch.equal(splits.val[1], labels[val])
    assert torch.equal(splits.train[0], images[rest])
    per_class = torch.bincount(labels, minlength=10)
    expected = [round(0.2 * int(n)) for n in per_class]
    assert torch.bincount(splits.val[1], minlength=10).tolist() == expected
    other = load_dataset("synthetic", val_fraction=0.5, seed=9, input_size=8)
    assert torch.equal(other.test[0], splits.test[0])  # same test set whatever the split
    assert splits.train[0].dtype == torch.uint8 and splits.train[1].dtype == torch.int64
    assert splits.train[0].shape[1:] == (3, 8, 8)


def test_merged_moves_validation_into_training():
    splits = load_dataset("synthetic", val_fraction=0.1, input_size=8)
    merged = splits.merged()
    assert len(merged.train[1]) == len(splits.train[1]) + len(splits.val[1])
    assert merged.val[0].shape == (0, 3, 8, 8) and len(merged.val[1]) == 0
    assert merged.test is splits.test


def test_zero_val_fraction_gives_empty_validation():
    splits = load_dataset("synthetic", val_fraction=0, input_size=8)
    assert len(splits.val[1]) == 0 and len(splits.train[1]) == 2000


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_val_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=fraction)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnist'.*cifar10"):
        load_dataset("mnist")
    assert set(DATASETS) == {"cifar10", "cifar100", "imagenette", "fashion-mnist", "synthetic"}


def test_default_data_dir_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "cse-nas"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "cse-nas"


# --- augmentation --------------------------------------------------------------------------


def test_crop_and_flip_keep_shape_dtype_and_pick_a_padded_window():
    images = torch.randint(1, 256, (16, 3, 6, 6), dtype=torch.uint8)
    aug = Augmentation(pad=2, flip=True)
    out = random_crop_flip(images, aug, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for src, got in zip(padded, out, strict=True):
        windows = [src[:, y:y + 6, x:x + 6] for y in range(5) for x in range(5)]
        assert any(torch.equal(got, w) or torch.equal(got, w.flip(-1)) for w in windows)


def test_augmentation_is_seeded_and_off_means_identity():
    images = torch.randint(0, 256, (8, 1, 5, 5), dtype=torch.uint8)
    aug = Augmentation(pad=1, flip=True)
    first = random_crop_flip(images, aug, torch.Generator().manual_seed(4))
    assert torch.equal(first, random_crop_flip(images, aug, torch.Generator().manual_seed(4)))
    assert random_crop_flip(images, Augmentation(), torch.Generator()) is images


def test_shuffled_batches_keep_labels_with_their_images():
    labels = torch.arange(100) % 10
    # Every pixel of image i is 10 * label + 5; zero padding never exceeds it.
    images = (labels * 10 + 5).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).clone()
    batches = list(shuffled_batches(images, labels, batch_size=32, aug=Augmentation(2, True),
                                    generator=torch.Generator().manual_seed(1)))
    assert [len(y) for _, y in batches] == [32, 32, 32]  # full batches only
    for x, y in batches:
        assert x.shape == (32, 3, 8, 8) and x.dtype == torch.uint8
        assert torch.equal(x.amax(dim=(1, 2, 3)).long(), y * 10 + 5)


def test_normalize_scales_per_channel_into_channels_last():
    images = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = Normalize((0.5, 0.0, 1.0), (0.5, 1.0, 0.25), torch.device("cpu"))(images)
    assert out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6)


def test_augmentation_refuses_negative_padding():
    with pytest.raises(ValueError, match="pad"):
        Augmentation(pad=-1)


# --- fashion-mnist from idx files ----------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes((0, 0, 0x08, array.ndim)) + b"".join(
        n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(folder: Path, *, train: int = 40, test: int = 10, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (count, 28, 28))
        labels = np.arange(count) % 10
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    folder = tmp_path / "fashion"
    _write_fashion(folder)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(folder))
    return folder


def test_fashion_mnist_reads_idx_files_and_caches_tensors(fashion_dir, tmp_path):
    splits = load_dataset("fashion-mnist", data_dir=tmp_path / "data", val_fraction=0.2)
    assert splits.info.shape.in_channels == 1 and splits.info.shape.input_size == 28
    assert splits.train[0].shape == (30, 1, 28, 28) and len(splits.val[1]) == 10
    assert splits.test[0].shape == (10, 1, 28, 28)
    cache = tmp_path / "data" / "tensors" / f"fashion-mnist-{folder_tag(fashion_dir)}-28px.pt"
    # The file's layout before image folders, readable by earlier versions.
    assert set(torch.load(cache, weights_only=True)) == {
        "train_images", "train_labels", "test_images", "test_labels"}
    for path in fashion_dir.iterdir():  # from now on only the cache can answer
        path.unlink()
    again = load_dataset("fashion-mnist", data_dir=tmp_path / "data", val_fraction=0.2)
    assert torch.equal(again.train[0], splits.train[0])


def test_another_fashion_mnist_folder_is_not_served_the_first_ones_cache(
        fashion_dir, tmp_path, monkeypatch):
    first = load_dataset("fashion-mnist", data_dir=tmp_path / "data")
    other = tmp_path / "other-fashion"
    _write_fashion(other, seed=1)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(other))
    second = load_dataset("fashion-mnist", data_dir=tmp_path / "data")
    assert not torch.equal(second.test[0], first.test[0])
    monkeypatch.setenv(FASHION_MNIST_ENV, str(fashion_dir))  # the first folder's cache stays
    assert torch.equal(load_dataset("fashion-mnist", data_dir=tmp_path / "data").test[0],
                       first.test[0])
    assert len(list((tmp_path / "data" / "tensors").glob("fashion-mnist-*-28px.pt"))) == 2


def test_fashion_mnist_rebuilds_a_damaged_cache(fashion_dir, tmp_path):
    cache = tmp_path / "tensors" / f"fashion-mnist-{folder_tag(fashion_dir)}-28px.pt"
    cache.parent.mkdir()
    cache.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="damaged cache"):
        splits = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert len(splits.test[1]) == 10
    assert len(torch.load(cache, weights_only=True)["test_labels"]) == 10


def test_fashion_mnist_resizes_once_to_input_size(fashion_dir, tmp_path):
    splits = load_dataset("fashion-mnist", data_dir=tmp_path, input_size=14)
    assert splits.train[0].shape[1:] == (1, 14, 14)
    assert (tmp_path / "tensors" / f"fashion-mnist-{folder_tag(fashion_dir)}-14px.pt").is_file()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "corrupt or truncated"),  # cut gzip stream
        (lambda data: b"garbage" + data, "corrupt or truncated"),  # not gzip at all
        (lambda data: gzip.compress(gzip.decompress(data)[:-100]), "truncated"),  # short idx
        (lambda data: gzip.compress(b"\0\0\x09\x03" + gzip.decompress(data)[4:]),
         "not an idx file"),
    ],
)
def test_damaged_fashion_mnist_file_is_refused_by_name(fashion_dir, tmp_path, damage, message):
    path = fashion_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "data")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_fashion_mnist_labels_out_of_range_are_refused(fashion_dir, tmp_path):
    labels = np.full(40, 12)
    (fashion_dir / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    with pytest.raises(DatasetError, match=r"labels outside 0\.\.9"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data")


def test_missing_fashion_mnist_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"nowhere.*train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data")


def test_failed_download_is_one_line_naming_the_data_dir(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        assert socket.getdefaulttimeout() is not None  # downloads must not hang
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "download failed" in message
    assert str(tmp_path) in message and "cifar-10-python.tar.gz" in message
    assert socket.getdefaulttimeout() == before


def test_imagenette_is_decoded_once_at_the_input_size(tmp_path):
    from PIL import Image

    # A stand-in for the extracted archive: torchvision finds it and downloads nothing.
    wnids = ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
             "n03417042", "n03425413", "n03445777", "n03888257")  # Imagenette's ten classes
    for split in ("train", "val"):
        for wnid in wnids:
            folder = tmp_path / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "a.JPEG")
            Image.new("L", (30, 50), 90).save(folder / "b.JPEG")  # greyscale exists there too
    splits = load_dataset("imagenette", data_dir=tmp_path, val_fraction=0, input_size=16)
    images, labels = splits.train
    assert images.shape == (20, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [2] * 10
    assert splits.test[0].shape == (20, 3, 16, 16)
    assert splits.info.augment == Augmentation(pad=2, flip=True)
    assert (tmp_path / "tensors" / "imagenette-16px.pt").is_file()
