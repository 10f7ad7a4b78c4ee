"""The search space: architectures as plain, validated values (no torch here)."""

from space.arch import (
    ACTIVATIONS,
    FORMAT_VERSION,
    HEAD_OPS,
    OPS,
    Arch,
    Block,
    Stage,
    block_output_size,
    blocks,
    network_key,
    stage_resolutions,
)
from space.inputs import DATASET_SHAPES, InputShape, dataset_shape, parse_input_shape
from space.load import load_arch
from space.presets import PRESETS, preset
from space.sample import CHOICES, MIN_FEATURE_SIZE, arch_from_params, preset_params, sample_arch

__all__ = [
    "ACTIVATIONS",
    "CHOICES",
    "DATASET_SHAPES",
    "FORMAT_VERSION",
    "HEAD_OPS",
    "MIN_FEATURE_SIZE",
    "OPS",
    "PRESETS",
    "Arch",
    "Block",
    "InputShape",
    "Stage",
    "arch_from_params",
    "block_output_size",
    "blocks",
    "dataset_shape",
    "load_arch",
    "network_key",
    "parse_input_shape",
    "preset",
    "preset_params",
    "sample_arch",
    "stage_resolutions",
]
