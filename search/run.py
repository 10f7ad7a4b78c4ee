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
from search.driver.tune import SearchResult, run_search
from search.reporting.trust import proxy_setting, trust_line
from search.study.results import read_study_info, trials_table
from search.study.storage import StudyError, open_study

__all__ = ["main"]


def _proxy_line(result: SearchResult) -> str | None:
    """How far the search's ranking can be trusted, from the study as the search left it;
    None where the study cannot say (the search itself has succeeded: no error for it)."""
    try:
        study = open_study(result.study_name, result.storage_url)
        info = read_study_info(study)
        return trust_line(trials_table(study),
                          proxy_setting(info.dataset, info.train_config, info.shape.input_size))
    except StudyError:
        return None


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    line = _proxy_line(run_search(parse_config(argv)))
    if line is not None:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
