"""A search's dataset: in Ray's object store once, on each worker's device once.

Where the bytes go (CIFAR-10 at 32 px: 45,000 training and 5,000 validation images, uint8,
3 KiB each, 154 MB; the test split never leaves the driver):

1. the driver loads the splits as CPU tensors (:func:`search.data.load_dataset`);
2. :meth:`SharedData.put` puts training and validation splits into Ray's object store,
   once per node (shared memory; other nodes fetch a copy once);
3. a worker process, on its first trial, fetches them (one CPU copy, dropped after the
   move) and keeps them on its training device (:func:`splits_on`): 154 MB of GPU memory
   per worker process, so ``k`` trials packed on one GPU hold ``k`` copies;
4. Tune runs a worker's next trials in the same process (``reuse_actors``), and they find
   the data already there: no object-store fetch and no host-to-device copy per trial.
   Each trial then draws its subset on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ray

from search.data import Splits
from search.training import resolve_device

__all__ = ["SharedData", "splits_on"]


@dataclass(frozen=True)
class SharedData:
    """A search's splits in Ray's object store, passed by reference.

    Tune's ``with_parameters`` fetches its values anew for every trial; wrapping the
    reference keeps that fetch to this small object, and :func:`splits_on` fetches the
    splits themselves once per process.
    """

    ref: ray.ObjectRef  # Splits without the test split

    @classmethod
    def put(cls, splits: Splits) -> SharedData:
        return cls(ray.put(splits.for_trials()))


# The worker process's copy: ((object ref, device), the splits there). Module-wide because
# the process is what Tune reuses between trials (``reuse_actors``); nothing of ours lives
# longer than one trial, the trainable included. Keyed and bounded: one entry, and a new
# search's data (another ref) or device replaces it, the old copy freed before the new one
# is fetched, so a device never holds two.
_cached: tuple[tuple[str, str], Splits] | None = None


def splits_on(data: SharedData, device: str) -> Splits:
    """The splits of ``data`` on ``device`` (a TrainConfig device), fetched and moved once
    per process."""
    global _cached
    target = resolve_device(device)
    key = (data.ref.hex(), str(target))
    if _cached is None or _cached[0] != key:
        _cached = None  # free a previous search's copy before making this one
        splits = ray.get(data.ref)
        moved = replace(splits, train=tuple(t.to(target) for t in splits.train),
                        val=tuple(t.to(target) for t in splits.val))
        _cached = (key, moved)
    return _cached[1]
