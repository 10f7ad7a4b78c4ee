"""The objective without Ray: one small architecture, trained on a sliver of synthetic data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from search.data import Splits, load_dataset
from search.study.objectives import objectives_from_names
from search.training import RECIPES, NonFiniteLossError
from search.training.evaluate import Evaluation, train_and_score
from space import CHOICES, Arch, arch_from_params

INPUT_SIZE = 8
CONFIG = replace(RECIPES["default"], epochs=2, batch_size=32, subset=0.1, lr=0.05, device="cpu")
CONTRACT_ATTRS = {"arch", "arch_str", "params", "macs", "val_accuracy_per_epoch",
                  "train_seconds", "wall_seconds", "device", "seed", "versions"}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # As in a search trial (Ray sets OMP_NUM_THREADS to its CPUs); on a busy 2-core machine
    # two threads make these tiny models ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def splits() -> Splits:
    return load_dataset("synthetic", input_size=INPUT_SIZE, val_fraction=0.1)


@pytest.fixture(scope="module")
def small_arch() -> Arch:
    # The first choice of every parameter: the narrowest, shallowest network of the space.
    return arch_from_params({name: values[0] for name, values in CHOICES.items()}, INPUT_SIZE)


@pytest.fixture(scope="module")
def evaluation(small_arch: Arch, splits: Splits) -> Evaluation:
    return train_and_score(small_arch, splits, CONFIG)


def test_values_follow_the_objectives(evaluation: Evaluation) -> None:
    assert 0 <= evaluation.val_accuracy <= 1
    assert evaluation.values(objectives_from_names(("accuracy", "params", "macs"))) == [
        evaluation.val_accuracy, evaluation.params, evaluation.macs]
    assert evaluation.values(objectives_from_names(("accuracy", "params")))[1] > 0


def test_user_attrs_are_the_documented_ones(evaluation: Evaluation, small_arch: Arch) -> None:
    attrs = json.loads(json.dumps(evaluation.user_attrs()))
    assert set(attrs) == CONTRACT_ATTRS
    assert Arch.from_json(attrs["arch"]) == small_arch
    assert attrs["arch_str"] == str(small_arch)
    assert len(attrs["val_accuracy_per_epoch"]) == CONFIG.epochs
    assert attrs["val_accuracy_per_epoch"][-1] == evaluation.val_accuracy
    assert attrs["device"] == "cpu" and attrs["seed"] == CONFIG.seed
    assert {"python", "torch", "optuna", "ray"} <= set(attrs["versions"])
    assert 0 < attrs["train_seconds"] <= attrs["wall_seconds"]


def test_same_seed_same_result(evaluation: Evaluation, small_arch: Arch, splits: Splits) -> None:
    again = train_and_score(small_arch, splits, CONFIG)
    assert (again.val_accuracy, again.params, again.macs) == (
        evaluation.val_accuracy, evaluation.params, evaluation.macs)


def test_scores_only_on_a_validation_split(small_arch: Arch) -> None:
    no_val = load_dataset("synthetic", input_size=INPUT_SIZE, val_fraction=0)
    with pytest.raises(ValueError, match="validation split is empty"):
        train_and_score(small_arch, no_val, CONFIG)


def test_diverging_training_raises(splits: Splits) -> None:
    # CSE blocks and the head use PReLU, which does not bound activations as ReLU6 does.
    smallest = {name: values[0] for name, values in CHOICES.items()}
    cse = {f"stage{i}.op": "cse" for i in range(7)}
    prelu = arch_from_params({**smallest, **cse, "act": "prelu"}, INPUT_SIZE)
    with pytest.raises(NonFiniteLossError):
        train_and_score(prelu, splits, replace(CONFIG, lr=1e6))
