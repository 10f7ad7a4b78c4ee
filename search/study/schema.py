"""Every key a study or trial carries: the project's data format.

Optuna's storage, ``optuna-dashboard``, the reports and the trials' own results all read
these names, so each is spelled here once and every reader and writer imports it. This
module imports neither torch nor Ray.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

ARCH_KEY = "arch"  # in a trial's config: the sampled Arch as JSON
NUMBER_KEY = "number"  # in a trial's config: its number in the study, for progress lines
PRESET_KEY = "preset"  # in a trial's config: the enqueued preset it is, if any
ATTRS_KEY = "user_attrs"  # in a trial's final result: JSON of its user attributes
PARTIAL_KEY = "partial_attrs"  # in a result after an epoch short of the last: the same so far
EPOCH_KEY = "epoch"  # in every result: epochs trained so far
FAIL_KEY = "fail_reason"  # in a trial's result: why the candidate failed
# User attr marking a trial that was cut short by its search stopping: it failed for a
# reason outside its architecture, so it does not count against the trial budget.
INTERRUPTED = "interrupted"
INTERRUPTED_REASON = "interrupted: the search stopped before this trial finished"
# User attr marking a trial enqueued (Optuna's enqueue_trial) with params outside the space:
# failed before anything was sampled or trained, it does not count against the budget either.
REJECTED = "rejected"
# User attrs of a trial the scheduler stopped at a rung (search.driver.scheduler): PRUNED, never
# COMPLETE, so no sampler and no front takes its partial accuracy for a final one.
PRUNED_EPOCH = "pruned_epoch"
PRUNED_RUNG = "pruned_rung"
PARTIAL_ACCURACY = "partial_val_accuracy"
CRASH_REASON = ("the trial's Ray worker failed outside the objective (see error.txt in "
                "its trial directory)")


CACHED_FROM = "cached_from"  # user attr of a served duplicate: the trained trial's number

EXPORT_ATTR_PREFIX = "export:"

def export_attr(number: int) -> str:
    """The study user attr that records the export of trial ``number``."""
    return f"{EXPORT_ATTR_PREFIX}{number}"


def is_cached(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was served from the cache rather than trained."""
    return CACHED_FROM in trial.user_attrs


def budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count towards ``--trials``: trained and complete, stopped early at a rung
    (PRUNED: as with ``study.optimize(n_trials=...)`` and Optuna's pruners), or failed on
    their own account. Duplicates served from the cache cost no training and do not
    count, nor do trials the search's own stopping interrupted, nor trials enqueued outside
    the space."""
    return [
        t for t in study.get_trials(deepcopy=False)
        if (t.state == TrialState.COMPLETE and not is_cached(t))
        or t.state == TrialState.PRUNED
        or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)
            and not t.user_attrs.get(REJECTED))
    ]


