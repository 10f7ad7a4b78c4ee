"""``python -m search.run``: the architecture search, from flags to a stored Optuna study.

Examples::

    python -m search.run --dataset fashion-mnist --budget smoke --trials 16
    python -m search.run --dataset cifar10 --trials 200              # on a GPU machine
    python -m search.run --dataset cifar10 --trials 200 --address head-node:6379

Rerunning a command resumes its study. Bad input prints one ``error: ...`` line on stderr
and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from search.config import parse_config
from search.tune import SearchError, run_search

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ValueError as err:
        return _fail(err)
    try:
        run_search(config)
    except SearchError as err:
        return _fail(err)
    return 0


def _fail(err: ValueError) -> int:
    print("error: " + " ".join(str(err).split()), file=sys.stderr)  # always one line
    return 2


if __name__ == "__main__":
    sys.exit(main())
