"""An architecture named on a command line: a preset name or a path to a JSON file."""

from __future__ import annotations

from pathlib import Path

from space.arch import Arch
from space.jsonfile import read_json_file
from space.presets import PRESETS, preset

__all__ = ["load_arch"]


def load_arch(ref: str) -> Arch:
    """``ref`` is a preset name or a path to an ``Arch.to_json()`` file; ``ValueError`` else."""
    if ref in PRESETS:
        return preset(ref)
    path = Path(ref)
    if path.suffix != ".json" and not path.exists():
        return preset(ref)  # not a file either: let preset() list the valid names
    data = read_json_file(path, "architecture file")
    try:
        return Arch.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{ref}: {err}") from None
