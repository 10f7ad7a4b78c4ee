"""Test-wide isolation: caches (decoded datasets, latency tables) go to a session folder,
never into the user's ``~/.cache/cse-nas``. And a cheaper latency correction: outside
``tests/cse_nets/test_correction.py``, which tests the fit itself, an export or a report
only carries the fitted correction, so it is fitted on 4 measured networks, not 24 (each
input shape's fit took ~45 s of the suite's time)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cse_nets.latency import correction


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def cheap_latency_correction() -> Iterator[None]:
    saved = correction.FIT_NETWORKS
    correction.FIT_NETWORKS = 4
    yield
    correction.FIT_NETWORKS = saved
