"""The checks every user-facing value goes through, written once."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["MAX_SEED", "non_negative_int", "positive_int", "positive_int_arg", "seed_int"]

MAX_SEED = 2**32 - 1  # the largest seed numpy's RandomState (Optuna's samplers) accepts


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is an ``int`` >= 1, else ``ValueError`` naming ``name``.

    ``bool`` is refused although it is an ``int`` subclass: ``True`` as a channel count is a
    bug, not a 1.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def non_negative_int(value: Any, name: str) -> int:
    """``value`` if it is an ``int`` >= 0 (not a ``bool``), else ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def positive_int_arg(text: str) -> int:
    """argparse ``type=`` for counts: ``"3"`` -> 3; ``"0"``, ``"-1"``, ``"x"`` are refused."""
    try:
        return positive_int(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def seed_int(value: Any, name: str) -> int:
    """``value`` if it is an ``int`` in 0..:data:`MAX_SEED`, else ``ValueError`` naming
    ``name``: a larger seed passes argparse and fails only deep inside numpy or torch."""
    if non_negative_int(value, name) > MAX_SEED:
        raise ValueError(f"{name} must be at most {MAX_SEED} (2**32 - 1), got {value!r}")
    return value
