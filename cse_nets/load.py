"""The export format, written by ``python -m search.export`` and read by :func:`load_model`.

An export directory holds:

* ``arch.json``: the architecture, ``Arch.to_json()``;
* ``model.json``: what the network is built for, ``{"format": 1, "in_channels": C,
  "input_size": H, "num_classes": K}``, plus whatever the exporter adds for people (the
  dataset, the input normalisation, the study and trial it came from);
* ``weights.pt``: the ``state_dict``, loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cse_nets.cli import first_line
from cse_nets.network import CSENet, build_network
from space import Arch, InputShape
from space.footprint import check_network_fits
from space.jsonfile import read_json_file

__all__ = ["ARCH_FILE", "INT8_ONNX_FILE", "MODEL_FILE", "ONNX_FILE", "WEIGHTS_FILE",
           "ExportError", "load_model", "read_export", "save_weights", "write_export"]

ARCH_FILE, MODEL_FILE, WEIGHTS_FILE, ONNX_FILE = ("arch.json", "model.json", "weights.pt",
                                             "model.onnx")
INT8_ONNX_FILE = "model.int8.onnx"  # search.export --int8: model.onnx quantised
_FORMAT = 1
_SHAPE_KEYS = ("in_channels", "input_size", "num_classes")


class ExportError(ValueError):
    """An export directory that is missing, malformed or does not match itself."""


def write_export(directory: Path, arch: Arch, shape: InputShape,
                 extra: dict[str, Any] | None = None) -> None:
    """Write ``arch.json`` and ``model.json``; ``extra`` keys go into ``model.json`` too."""
    model = {"format": _FORMAT, "in_channels": shape.in_channels,
             "input_size": shape.input_size, "num_classes": shape.num_classes, **(extra or {})}
    (directory / ARCH_FILE).write_text(arch.to_json() + "\n")
    (directory / MODEL_FILE).write_text(json.dumps(model, indent=2) + "\n")


def save_weights(network: nn.Module, directory: Path) -> None:
    """``weights.pt``: the ``state_dict`` on the CPU, loadable with ``weights_only=True``."""
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    torch.save(state, directory / WEIGHTS_FILE)


def _read_json(path: Path) -> Any:
    try:
        return read_json_file(path, "export file")
    except ValueError as err:
        raise ExportError(str(err)) from None


def read_export(directory: str | Path) -> tuple[Arch, InputShape]:
    """The architecture and input an export was built for, checked."""
    directory = Path(directory)
    if not (directory / ARCH_FILE).is_file():
        raise ExportError(f"{directory} is not an export directory (no {ARCH_FILE})")
    data = _read_json(directory / ARCH_FILE)
    try:
        arch = Arch.from_dict(data)
    except ValueError as err:
        raise ExportError(f"{directory / ARCH_FILE}: {err}") from None
    path = directory / MODEL_FILE
    model = _read_json(path)
    version = model.get("format") if isinstance(model, dict) else None
    if type(version) is not int or version != _FORMAT:  # true == 1 in Python
        raise ExportError(f"{path}: expected a JSON object with format {_FORMAT}")
    values = [model.get(key) for key in _SHAPE_KEYS]
    try:
        shape = InputShape(*values)
    except ValueError:
        raise ExportError(f"{path}: {', '.join(_SHAPE_KEYS)} must be positive integers, "
                          f"got {values}") from None
    try:
        check_network_fits(arch, shape)  # also: the strides fit the input
    except ValueError as err:
        raise ExportError(f"{directory}: {err}") from None
    return arch, shape


def _check_fits(state: dict[str, Any], network: nn.Module, path: Path) -> None:
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ExportError(f"{path} does not match {ARCH_FILE}: "
                          f"{len(missing)} missing key(s) {missing[:3]}, "
                          f"{len(unexpected)} unexpected {unexpected[:3]}")
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ExportError(f"{path} does not match {ARCH_FILE}: {key} is {got}, "
                              f"the network expects {tuple(tensor.shape)}")


def load_model(export_dir: str | Path) -> CSENet:
    """The exported network with its trained weights, on the CPU, in eval mode.

    Raises :class:`ExportError` (a ``ValueError``, one-line message) when a file is
    missing or malformed, or the weights do not fit the architecture.
    """
    directory = Path(export_dir)
    arch, shape = read_export(directory)
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"{directory} has no {WEIGHTS_FILE} (export with --retrain-epochs)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise ExportError(f"{path} is not a readable state_dict: {first_line(err)}") from None
    if not isinstance(state, dict):
        raise ExportError(f"{path} holds a {type(state).__name__}, not a state_dict")
    network = build_network(arch, shape)
    _check_fits(state, network, path)
    network.load_state_dict(state)
    return network.eval()
