"""Command-line arguments the search's tools share: which study, where it is stored."""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from search.study.storage import DEFAULT_RESULTS_DIR, default_storage, open_study

__all__ = ["add_study_arguments", "open_study_from_args", "storage_url_from_args"]


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """``--study``, ``--storage`` and ``--results-dir``, with the search's defaults."""
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--storage", help="Optuna storage URL "
                        "(default: sqlite:///<results-dir>/<study>.db)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR,
                        help="where results go (default: %(default)s)")


def storage_url_from_args(args: argparse.Namespace) -> str:
    """``--storage``, or the default SQLite file of ``--study`` in ``--results-dir``."""
    if args.storage is None:  # "" is a malformed URL, not the default
        return default_storage(args.results_dir, args.study)
    return args.storage


def open_study_from_args(args: argparse.Namespace) -> optuna.Study:
    return open_study(args.study, storage_url_from_args(args))
