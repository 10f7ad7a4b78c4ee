"""python -m search.run: the architecture search, from flags to a stored Optuna study.

Examples::

    python -m search.run --dataset fashion-mnist --budget smoke --trials 16
    python -m search.run --dataset cifar10 --trials 200              # on a GPU machine
    python -m search.run --dataset cifar10 --trials 200 --address head-node:6379

Rerunning a command resumes its study. Bad input prints one ``error: ...`` line on stderr
and exits with status 2; a run whose every trial failed prints one such line with the
reason and exits with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cse_nets.cli import exits_on_bad_input
from search.driver.config import parse_config
from search.driver.tune import run_search

__all__ = ["main"]


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    run_search(parse_config(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
