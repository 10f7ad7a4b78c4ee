"""The dataset reaches each worker's device once, not once per trial."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import ray
import torch

from search.data import load_dataset
from search.trials import shared_data as trial_data
from search.trials.shared_data import SharedData, splits_on


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.slow
def test_splits_are_fetched_once_per_process(local_ray: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    splits = load_dataset("synthetic", input_size=16)
    data = SharedData.put(splits)
    fetches = []
    real_get = ray.get
    monkeypatch.setattr(trial_data.ray, "get", lambda ref: fetches.append(ref) or real_get(ref))
    first = splits_on(data, "cpu")
    assert splits_on(data, "cpu") is first and len(fetches) == 1  # the second trial's
    assert torch.equal(first.train[0], splits.train[0])
    assert len(first.test[1]) == 0  # trials never see the test split
    other = SharedData.put(splits)  # another search's data replaces it
    assert splits_on(other, "cpu") is not first and len(fetches) == 2



def test_a_process_holds_one_copy_and_frees_it_before_fetching_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    splits = load_dataset("synthetic", input_size=16)
    held: list[weakref.ref] = []

    def fetch(ref: object) -> object:
        gc.collect()
        assert all(copy() is None for copy in held)  # the last copy is gone already
        return splits

    monkeypatch.setattr(trial_data.ray, "get", fetch)
    first = splits_on(SharedData(SimpleNamespace(hex=lambda: "a")), "cpu")
    assert splits_on(SharedData(SimpleNamespace(hex=lambda: "a")), "cpu") is first
    held.append(weakref.ref(first))
    del first
    assert splits_on(SharedData(SimpleNamespace(hex=lambda: "b")), "cpu").train
