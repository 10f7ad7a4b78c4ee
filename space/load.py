"""An architecture named on a command line: a preset name or a path to a JSON file."""

from __future__ import annotations

from pathlib import Path

from space.arch import Arch
from space.presets import PRESETS, preset

__all__ = ["load_arch"]


def load_arch(ref: str) -> Arch:
    """``ref`` is a preset name or a path to an ``Arch.to_json()`` file; ``ValueError`` else."""
    if ref in PRESETS:
        return preset(ref)
    path = Path(ref)
    if path.suffix != ".json" and not path.exists():
        return preset(ref)  # not a file either: let preset() list the valid names
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read architecture file {ref}: {err.strerror}") from None
    try:
        return Arch.from_json(text)
    except ValueError as err:
        raise ValueError(f"{ref}: {err}") from None
