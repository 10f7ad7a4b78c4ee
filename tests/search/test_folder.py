from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search.data import DatasetError, dataset_slug, fit_square, is_dataset, load_dataset
from search.data import folder as image_folder
from search.driver.config import SearchConfig, check_config
from tests.search.folders import CLASSES, make_image_folder, write_image


def _load(folder: Path, data: Path, **kwargs) -> object:
    return load_dataset(f"folder:{folder}", data_dir=data, **kwargs)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


@pytest.fixture
def decodes(monkeypatch):
    """How many images were decoded (headers read don't count)."""
    calls = []
    decode = image_folder.decode_image

    def counting(path, mode, size):
        calls.append(path)
        return decode(path, mode, size)

    monkeypatch.setattr(image_folder, "decode_image", counting)
    return calls


# --- layouts, splits, rules -----------------------------------------------------------------


def test_flat_folder_gives_splits_with_a_carved_test_split(tmp_path, decodes):
    folder = make_image_folder(tmp_path / "shapes", 20)
    splits = _load(folder, tmp_path / "data", val_fraction=0.1, seed=3)
    info = splits.info
    assert info.name == f"folder:{folder}" and info.class_names == CLASSES
    assert info.shape.num_classes == 3 and info.shape.in_channels == 3
    assert info.shape.input_size == 32  # the images are 24-72 px: median below 64
    for images, labels in (splits.train, splits.val, splits.test):
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
        assert labels.dtype == torch.int64 and len(labels) == len(images)
    # 20 per class: 4 to test (20%), then 2 of the other 16 to validation (10%).
    assert torch.bincount(splits.test[1]).tolist() == [4, 4, 4]
    assert torch.bincount(splits.val[1]).tolist() == [2, 2, 2]
    assert torch.bincount(splits.train[1]).tolist() == [14, 14, 14]
    test = _rows(splits.test[0])
    assert len(test) == 12 and test.isdisjoint(_rows(splits.train[0]) | _rows(splits.val[0]))
    assert len(decodes) == 60
    assert info.source["test"] == {"from": "carved", "seed": image_folder.TEST_SEED,
                                   "fraction": image_folder.TEST_FRACTION}
    assert info.source["val"] == {"from": "carved", "seed": 3, "fraction": 0.1}
    assert info.source["images"] == {"train": 42, "val": 6, "test": 12}
    json.dumps(info.source)  # it goes into study attributes as it is


def test_carved_test_split_depends_on_the_content_only(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 10)
    first = _load(folder, tmp_path / "a", seed=0)
    other = _load(folder, tmp_path / "b", seed=7, val_fraction=0.3)  # no cache shared
    assert torch.equal(first.test[0], other.test[0]) and torch.equal(first.test[1],
                                                                     other.test[1])
    assert not torch.equal(first.val[0], other.val[0][: len(first.val[0])])


def test_split_folder_uses_its_val_and_test_folders(tmp_path):
    counts = {"train": 12, "val": 4, "test": 5}
    folder = make_image_folder(tmp_path / "shapes", counts)
    splits = _load(folder, tmp_path / "data", val_fraction=0.5)  # ignored: val/ is given
    assert [len(pair[1]) for pair in (splits.train, splits.val, splits.test)] == [36, 12, 15]
    assert torch.bincount(splits.val[1]).tolist() == [4, 4, 4]
    assert splits.info.source["val"] == {"from": "val/"}
    assert splits.info.source["test"] == {"from": "test/"}
    assert splits.info.source["layout"] == "split"
    without_val = make_image_folder(tmp_path / "no-val", {"train": 10, "test": 3})
    splits = _load(without_val, tmp_path / "data", val_fraction=0.2)
    assert [len(pair[1]) for pair in (splits.train, splits.val, splits.test)] == [24, 6, 9]
    without_test = make_image_folder(tmp_path / "no-test", {"train": 10, "val": 3})
    splits = _load(without_test, tmp_path / "data")
    assert [len(pair[1]) for pair in (splits.train, splits.val, splits.test)] == [24, 9, 6]
    assert splits.info.source["test"]["from"] == "carved"


def test_labels_follow_sorted_class_folder_names(tmp_path):
    rng = np.random.default_rng(0)
    for cls in reversed(CLASSES):  # created in reverse order
        for i in range(3):
            write_image(tmp_path / "f" / cls / f"{i}.png", cls, rng, size=(32, 32))
    splits = _load(tmp_path / "f", tmp_path / "data", val_fraction=0)
    assert splits.info.class_names == CLASSES
    images = torch.cat([splits.train[0], splits.test[0]])
    labels = torch.cat([splits.train[1], splits.test[1]])
    for label, cls in enumerate(CLASSES):  # 32x32 PNGs at 32 px: the pixels as written
        written = {np.asarray(Image.open(path)).transpose(2, 0, 1).tobytes()
                   for path in (tmp_path / "f" / cls).iterdir()}
        assert _rows(images[labels == label]) == written


def test_grey_only_folder_keeps_one_channel_and_one_colour_image_makes_rgb(tmp_path):
    grey = make_image_folder(tmp_path / "grey", 6, grey=True)
    splits = _load(grey, tmp_path / "data")
    assert splits.info.shape.in_channels == 1 and splits.train[0].shape[1] == 1
    assert len(splits.info.mean) == len(splits.info.std) == 1
    write_image(grey / "red-square" / "colour.png", "red-square", np.random.default_rng(1))
    assert _load(grey, tmp_path / "data").info.shape.in_channels == 3


def test_default_size_is_64_for_large_images_and_input_size_overrides(tmp_path):
    rng = np.random.default_rng(0)
    for cls in CLASSES[:2]:
        for i in range(4):
            write_image(tmp_path / "big" / cls / f"{i}.jpg", cls, rng, size=(120, 80))
    assert _load(tmp_path / "big", tmp_path / "data").info.shape.input_size == 64
    splits = _load(tmp_path / "big", tmp_path / "data", input_size=16)
    assert splits.train[0].shape[1:] == (3, 16, 16) and splits.info.augment.pad == 2
    assert image_folder.default_size([]) == 32
    assert image_folder.default_size([64, 64, 30]) == 64


def test_fit_square_resizes_the_shorter_side_and_keeps_the_centre():
    pixels = np.zeros((30, 90, 3), dtype=np.uint8)
    pixels[:, 30:60] = 255  # a white middle third between black sides
    square = fit_square(Image.fromarray(pixels), 30)  # no resize: only the crop
    assert square.shape == (3, 30, 30) and square.dtype == torch.uint8
    assert int(square.min()) == 255  # the black sides were cropped away
    small = fit_square(Image.fromarray(pixels), 15)  # 45x15, then the middle 15 columns
    assert small.shape == (3, 15, 15) and int(small[:, :, 2:13].min()) == 255


def test_normalisation_statistics_come_from_the_training_split(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 9)
    splits = _load(folder, tmp_path / "data")
    pixels = splits.train[0].double() / 255
    assert splits.info.mean == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-9)
    assert splits.info.std == pytest.approx(pixels.std((0, 2, 3), unbiased=False).tolist(),
                                            abs=1e-9)


def test_name_is_absolute_and_reloads_from_another_directory(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "shapes", 5)
    monkeypatch.chdir(tmp_path)
    splits = load_dataset("folder:shapes", data_dir=tmp_path / "data")
    assert splits.info.name == f"folder:{tmp_path / 'shapes'}"
    monkeypatch.chdir(tmp_path / "data")
    again = load_dataset(splits.info.name, data_dir=tmp_path / "data")
    assert torch.equal(again.test[0], splits.test[0])


def test_files_that_are_not_images_are_ignored(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 5)
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    (folder / "notes.txt").write_text("not an image")
    (folder / "red-square" / "notes.txt").write_text("not an image")
    (folder / "red-square" / "._red-square-000.png").write_bytes(b"AppleDouble")
    (folder / ".hidden").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: nothing was taken for an image
        splits = _load(folder, tmp_path / "data", val_fraction=0)
    assert len(splits.train[1]) + len(splits.test[1]) == 15


def test_class_folders_may_be_nested_and_linked(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 4)
    elsewhere = make_image_folder(tmp_path / "more", 3)
    os.symlink(elsewhere / "red-square", folder / "red-square" / "linked")
    (folder / "blue-circle" / "deeper").mkdir()
    os.replace(folder / "blue-circle" / "blue-circle-000.png",
               folder / "blue-circle" / "deeper" / "x.png")
    splits = _load(folder, tmp_path / "data", val_fraction=0)
    labels = torch.cat([splits.train[1], splits.test[1]])
    assert torch.bincount(labels).tolist() == [4, 4, 7]


# --- the cache ------------------------------------------------------------------------------


def test_second_load_decodes_nothing(tmp_path, decodes, monkeypatch):
    folder = make_image_folder(tmp_path / "my.shapes v2", 6)  # a dot and a space
    first = _load(folder, tmp_path / "data")
    assert len(decodes) == 18

    def no_headers(path):
        raise AssertionError("the cache should answer")

    monkeypatch.setattr(image_folder, "_read_header", no_headers)
    again = _load(folder, tmp_path / "data")
    assert len(decodes) == 18
    assert torch.equal(again.train[0], first.train[0]) and again.info == first.info
    assert again.info.source == first.info.source
    cached = sorted(path.name for path in (tmp_path / "data" / "tensors").iterdir())
    key = first.info.source["content_key"]
    assert [name.removeprefix("folder-my.shapes-v2-").split("-", 1)[1] for name in cached] \
        == [f"{key}-32px.pt", f"{key}.json"]


@pytest.mark.parametrize("change", ["touch", "add", "remove", "rename"])
def test_a_changed_folder_is_decoded_again(tmp_path, decodes, change):
    folder = make_image_folder(tmp_path / "shapes", 6)
    first = _load(folder, tmp_path / "data", val_fraction=0)
    image = folder / "red-square" / "red-square-000.png"
    if change == "touch":
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    elif change == "add":
        write_image(folder / "red-square" / "new.png", "red-square", np.random.default_rng(5))
    elif change == "remove":
        image.unlink()
    else:
        image.rename(image.with_name("renamed.png"))
    again = _load(folder, tmp_path / "data", val_fraction=0)
    total = {"touch": 18, "add": 19, "remove": 17, "rename": 18}[change]
    assert len(decodes) == 18 + total
    assert len(again.train[1]) + len(again.test[1]) == total
    assert again.info.source["content_key"] != first.info.source["content_key"]
    # The earlier content's files are gone; the new one's are there.
    cached = sorted(path.name for path in (tmp_path / "data" / "tensors").iterdir())
    assert len(cached) == 2 and all(again.info.source["content_key"] in n for n in cached)


def test_each_input_size_has_its_cache_and_both_stay(tmp_path, decodes):
    folder = make_image_folder(tmp_path / "shapes", 4)
    _load(folder, tmp_path / "data", input_size=16)
    _load(folder, tmp_path / "data")
    _load(folder, tmp_path / "data", input_size=16)
    assert len(decodes) == 24
    assert len(list((tmp_path / "data" / "tensors").glob("*px.pt"))) == 2


# --- bad folders ----------------------------------------------------------------------------


def _missing(root: Path) -> None:
    pass


def _a_file(root: Path) -> None:
    root.write_text("not a folder")


def _empty(root: Path) -> None:
    root.mkdir()
    (root / "readme.txt").write_text("images go in class folders")


def _class_without_images(root: Path) -> None:
    make_image_folder(root, 3, classes=CLASSES[:2])
    (root / "zebra").mkdir()
    (root / "zebra" / "notes.txt").write_text("no images here")


def _one_class(root: Path) -> None:
    make_image_folder(root, 3, classes=CLASSES[:1])


def _test_classes_differ(root: Path) -> None:
    make_image_folder(root, {"train": 3})
    make_image_folder(root, {"test": 2}, classes=(*CLASSES[:2], "yellow-star"))


def _symlink_loop(root: Path) -> None:
    make_image_folder(root, 3)
    os.symlink(root / "red-square", root / "red-square" / "again")


def _stray_folder_beside_train(root: Path) -> None:
    make_image_folder(root, {"train": 3, "extras": 1})


def _test_without_train(root: Path) -> None:
    make_image_folder(root, {"test": 3})


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_missing, "does not exist"),
        (_a_file, "is not a folder"),
        (_empty, "has no class folders"),
        (_class_without_images, "zebra has no images"),
        (_one_class, "only 1 class folder (blue-circle)"),
        (_test_classes_differ, "missing red-square; not in training yellow-star"),
        (_symlink_loop, "symlink loop"),
        (_stray_folder_beside_train, "has train/ and also extras"),
        (_test_without_train, "has test/ but no train/"),
    ],
)
def test_bad_folder_is_one_line_error(tmp_path, make, fragment):
    root = tmp_path / "bad"
    make(root)
    with pytest.raises(DatasetError) as err:
        _load(root, tmp_path / "data")
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert not (tmp_path / "data" / "tensors").exists()  # nothing written


def _add_broken_images(folder: Path) -> list[str]:
    (folder / "red-square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (folder / "blue-circle" / "blue-circle-002.jpg").read_bytes()
    (folder / "blue-circle" / "cut.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "green-triangle" / "empty.png").touch()
    return ["blue-circle/cut.jpg", "green-triangle/empty.png", "red-square/broken.png"]


def test_undecodable_images_are_skipped_with_a_warning(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 5)
    broken = _add_broken_images(folder)
    with pytest.warns(UserWarning, match="skipped 3 image") as record:
        splits = _load(folder, tmp_path / "data", val_fraction=0)
    message = str(record[0].message)
    assert "\n" not in message and all(name in message for name in broken)
    assert len(splits.train[1]) + len(splits.test[1]) == 15
    assert splits.info.source["skipped"] == 3
    assert sorted(splits.info.source["skipped_examples"]) == broken
    with pytest.warns(UserWarning, match="skipped 3 image"):  # also when from the cache
        _load(folder, tmp_path / "data", val_fraction=0)


@pytest.mark.parametrize("cached", [False, True])
def test_strict_images_refuses_undecodable_images(tmp_path, cached):
    folder = make_image_folder(tmp_path / "shapes", 5)
    _add_broken_images(folder)
    if cached:  # a lenient load cached the folder first: strict must still refuse
        with pytest.warns(UserWarning):
            _load(folder, tmp_path / "data")
    with pytest.raises(DatasetError, match=r"3 image\(s\) cannot be decoded") as err:
        _load(folder, tmp_path / "data", strict_images=True)
    assert "\n" not in str(err.value) and "red-square/broken.png" in str(err.value)


def test_a_class_with_no_decodable_image_is_refused(tmp_path):
    folder = make_image_folder(tmp_path / "shapes", 2)
    for path in (folder / "red-square").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="no image of class red-square can be decoded"):
        _load(folder, tmp_path / "data")


def test_too_little_memory_is_refused_before_decoding(tmp_path, decodes, monkeypatch):
    folder = make_image_folder(tmp_path / "shapes", 4)
    monkeypatch.setattr(image_folder, "_mem_available", lambda: 50_000)
    with pytest.raises(DatasetError) as err:
        _load(folder, tmp_path / "data", input_size=64)
    message = str(err.value)
    needed = image_folder.memory_needed(12, 3, 64, 72 * 72)  # images are at most 72x72
    assert f"{needed / 2**30:.2f} GiB" in message and "0.00 GiB is available" in message
    assert "12 images at 3x64x64" in message and "\n" not in message
    assert decodes == [] and not list((tmp_path / "data" / "tensors").glob("*.pt"))


def test_memory_rule_for_100k_images_at_64_px():
    # The rule's main term: the uint8 images twice (the split copies them once).
    assert image_folder.memory_needed(100_000, 3, 64, 0) == 2 * 100_000 * 3 * 64 * 64


def test_mem_available_reads_proc_meminfo():
    available = image_folder._mem_available()
    if Path("/proc/meminfo").exists():
        assert available is not None and available > 0


# --- names --------------------------------------------------------------------------------


def test_dataset_names_and_slugs(tmp_path):
    assert is_dataset("cifar10") and is_dataset("folder:/data/pets")
    assert not is_dataset("folder:") and not is_dataset("mnist")
    assert dataset_slug("cifar10") == "cifar10"
    assert dataset_slug("folder:/data/My Pets/") == "folder-My-Pets"
    assert dataset_slug("folder:/") == "folder"
    pets = make_image_folder(tmp_path / "My Pets", per_class=2)
    assert SearchConfig(dataset=f"folder:{pets}").study == "folder-My-Pets-standard"
    with pytest.raises(DatasetError, match="does not exist"):  # checked before Ray starts
        check_config(SearchConfig(dataset="folder:/data/pets", study_name="pets"))
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*folder:PATH"):
        SearchConfig(dataset="mnist")
    with pytest.raises(DatasetError, match=r"unknown dataset 'folder:'.*folder:PATH"):
        load_dataset("folder:")


# --- pixel depth: 16-bit and float greyscale --------------------------------------------------


def _sixteen_bit_folder(root: Path, per_class: int = 30) -> Path:
    """Two classes of 16-bit greyscale noise PNGs: dim (300-5000) and bright (20000-65535);
    clipped to 8 bits, as Pillow's convert("L") does, both are a constant 255."""
    rng = np.random.default_rng(0)
    for cls, (low, high) in (("bright", (20_000, 65_536)), ("dim", (300, 5_001))):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, size=(16, 16)).astype(np.uint16)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return root


def test_sixteen_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    folder = _sixteen_bit_folder(tmp_path / "scans")
    splits = _load(folder, tmp_path / "data", val_fraction=0)
    images = torch.cat([splits.train[0], splits.test[0]])
    labels = torch.cat([splits.train[1], splits.test[1]])
    assert splits.info.shape.in_channels == 1 and len(_rows(images)) == len(images)
    assert all(len(image.unique()) > 10 for image in images)  # noise, not a constant
    bright, dim = (images[labels == label].double().mean() for label in (0, 1))
    assert 150 < bright < 185 and 5 < dim < 15  # the classes' mean value / 257
    assert 0.3 < splits.info.mean[0] < 0.4 and splits.info.std[0] > 0.25


@pytest.mark.parametrize(("dtype", "suffix"), [("<u2", ".png"), (">u2", ".tif"),
                                               ("<i4", ".tif")])
def test_every_16_bit_mode_scales_by_65535(tmp_path, dtype, suffix):
    pixels = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(dtype)
    path = tmp_path / f"ramp{suffix}"
    Image.fromarray(pixels).save(path)
    decoded = image_folder.decode_image(str(path), "L", 64)
    assert decoded is not None and decoded.shape == (1, 64, 64)
    assert torch.equal(decoded[0], torch.from_numpy(np.rint(pixels / 257).astype(np.uint8)))


def test_float_images_in_0_1_keep_their_grey_levels(tmp_path):
    path = tmp_path / "ramp.tif"
    Image.fromarray(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)).save(path)
    for mode in ("L", "RGB"):
        decoded = image_folder.decode_image(str(path), mode, 32)
        assert decoded is not None and len(decoded.unique()) > 200
        assert int(decoded.min()) == 0 and int(decoded.max()) == 255


@pytest.mark.parametrize(("values", "mode"), [(np.float32([[0, 1.5]]), "F"),
                                              (np.float32([[0, np.nan]]), "F"),
                                              (np.int32([[0, 70_000]]), "I")])
def test_a_folder_with_values_outside_the_modes_range_is_refused(tmp_path, values, mode):
    folder = make_image_folder(tmp_path / "shapes", 3, grey=True)
    odd = Image.fromarray(np.repeat(values, 8, axis=0))
    assert odd.mode == mode
    odd.save(folder / "red-square" / "odd.tif")
    with pytest.raises(DatasetError, match=rf"odd\.tif: {mode} image with values") as err:
        _load(folder, tmp_path / "data")
    assert "\n" not in str(err.value)


def test_a_short_run_learns_16_bit_classes_and_records_their_statistics(tmp_path, capsys):
    from search.train import main
    from tests.search.test_train import TINY

    folder = _sixteen_bit_folder(tmp_path / "scans", per_class=100)
    arch = tmp_path / "tiny.json"
    arch.write_text(TINY.to_json())
    saved = tmp_path / "run"
    # Batches of 8 over 3 epochs: 60 steps, enough for the norms' running statistics, which
    # evaluation uses, to settle (at 20 steps it still scored chance).
    assert main(["--arch", str(arch), "--dataset", f"folder:{folder}", "--input-size", "16",
                 "--epochs", "3", "--batch-size", "8", "--lr", "0.05", "--device", "cpu",
                 "--data-dir", str(tmp_path / "data"), "--save", str(saved)]) == 0
    metrics = json.loads((saved / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8, capsys.readouterr().out  # chance is 0.5
    stats = json.loads((saved / "model.json").read_text())["normalization"]
    assert 0.3 < stats["mean"][0] < 0.4 and stats["std"][0] > 0.25
