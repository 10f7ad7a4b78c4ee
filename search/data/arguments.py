"""The data flags every command line that loads a dataset takes, declared once."""

from __future__ import annotations

import argparse
from pathlib import Path

from space.checks import positive_int_arg

__all__ = ["add_data_arguments", "add_data_dir_argument"]


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``: where datasets are downloaded and their decoded tensors cached."""
    parser.add_argument("--data-dir", type=Path,
                        help="dataset root: downloads and cached tensors "
                             "(default: the cse-nas cache)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input-size``, ``--data-dir`` and ``--strict-images``, the arguments of
    :func:`search.data.load_dataset` that a user chooses."""
    parser.add_argument("--input-size", type=positive_int_arg,
                        help="resize images to this side (default: the dataset's; "
                             "imagenette's is 64)")
    add_data_dir_argument(parser)
    parser.add_argument("--strict-images", action="store_true",
                        help="refuse an image folder with an undecodable image "
                             "(default: skip it, warn)")
