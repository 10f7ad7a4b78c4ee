"""Optuna proposes the trials Ray Tune runs; the searcher records them in the study.

:class:`StudySearch` is Ray Tune's ``OptunaSearch`` over the architecture space; it also
writes each trial's user attributes and failure reason into the study before telling
Optuna the outcome (a told trial's attributes are frozen), and serves proposals of
architectures the study has already trained from
:class:`search.study.evaluation_cache.EvaluationCache` instead of handing them to Tune. It
runs in the driver, the study's only writer.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.driver.startup import enqueued_params
from search.study.evaluation_cache import CachedEvaluation, EvaluationCache
from search.study.objectives import PARAMS, Objective
from search.study.schema import (
    ARCH,
    ARCH_KEY,
    ARCH_STR,
    ATTRS_KEY,
    CRASH_REASON,
    FAIL_KEY,
    FAIL_REASON,
    INTERRUPTED,
    INTERRUPTED_REASON,
    NODE_LOST,
    NODE_LOST_REASON,
    NUMBER_KEY,
    OVER_MAX_PARAMS,
    PARTIAL_ACCURACY,
    PARTIAL_KEY,
    PRESET,
    PRESET_KEY,
    PRUNED_EPOCH,
    PRUNED_RUNG,
    REJECTED,
    WALL_SECONDS,
    WORKER_DIED,
)
from space import Arch, InputShape, sample_arch
from space.footprint import network_footprint
from space.sample import check_params
from space.smallest import smallest_arch

__all__ = [
    "MAX_UNTRAINED_IN_A_ROW",
    "SizeCap",
    "StudySearch",
    "check_size_cap",
]

# A sampler that proposes only trained architectures (or only ones over --max-params) this
# many times running has converged, or the cap leaves it nothing: the search stops rather
# than ask for ever (each ask writes 53 parameters, ~0.5 s).
MAX_UNTRAINED_IN_A_ROW = 100


@dataclass(frozen=True)
class SizeCap:
    """``--max-params``: sampled architectures with more parameters on ``shape`` are not
    trained."""

    max_params: int
    shape: InputShape

    def excess(self, arch: Arch) -> int | None:
        """``arch``'s parameter count if it is over the cap, else None."""
        params = network_footprint(arch, self.shape).params
        return params if params > self.max_params else None


def check_size_cap(max_params: int, shape: InputShape) -> None:
    """``ValueError`` if no architecture of the space fits ``--max-params`` on ``shape``:
    every proposal would be pruned untrained."""
    smallest = smallest_arch(shape)
    params = network_footprint(smallest, shape).params
    if max_params < params:
        raise ValueError(
            f"--max-params {max_params:,} is below the smallest network of the search space "
            f"on {'x'.join(map(str, shape.chw))} inputs ({params:,} parameters: {smallest}); "
            "raise it")


@dataclass(frozen=True)
class _Running:
    """A trial handed to Tune: OptunaSearch's key for it, the Optuna trial, its arch."""

    key: str
    trial: optuna.Trial
    arch: Arch


class StudySearch(OptunaSearch):
    """``OptunaSearch`` over the architecture space that also stores each trial's attributes
    and failure reason.

    It keeps its own map from Tune's trial ids to the Optuna trials its space function was
    handed, so it needs none of ``OptunaSearch``'s private state. ``stopping`` says whether
    the search is being stopped: a trial that errs then (its worker got the same Ctrl-C) is
    interrupted, not failed. ``failure_reason`` names the cause of a trial that erred
    outside the objective (its worker died), given its Tune trial id.
    ``stopped_at`` says where the scheduler stopped a trial (rung, epoch), given its Tune
    trial id, or None: such a trial is PRUNED, with its partial record.
    A proposal that the ``cache`` holds is told COMPLETE at once and the sampler is asked
    again, so no Ray trial is spent on it: one Tune trial is one training. A proposal over
    ``size_cap`` (but a preset) is told PRUNED at once, with its parameter count and
    :data:`~search.study.schema.OVER_MAX_PARAMS`: TPE ranks pruned trials below every
    complete one, so it learns to propose smaller networks. Likewise a trial
    enqueued (Optuna's ``enqueue_trial``) with params outside the space is told FAIL at
    once, its ``fail_reason`` naming them, with a warning on stderr.
    """

    def __init__(self, *, input_size: int, objectives: Sequence[Objective], study_name: str,
                 sampler: optuna.samplers.BaseSampler,
                 storage: optuna.storages.BaseStorage | None = None,
                 cache: EvaluationCache | None = None,
                 size_cap: SizeCap | None = None,
                 stopping: Callable[[], bool] = lambda: False,
                 failure_reason: Callable[[str], str] = lambda trial_id: CRASH_REASON,
                 stopped_at: Callable[[str], Any] = lambda trial_id: None) -> None:
        self._input_size = input_size
        self._metrics = [o.metric for o in objectives]
        self._cache = cache if cache is not None else EvaluationCache(input_size)
        self._size_cap = size_cap
        self._stopping = stopping
        self._failure_reason = failure_reason
        self._stopped_at = stopped_at
        self._asked: tuple[optuna.Trial, Arch] | None = None
        # The trial just asked for, if it was enqueued wrong: its number and fail reason.
        self._rejected: tuple[int, str] | None = None
        self._running: dict[str, _Running] = {}
        super().__init__(
            self._define_by_run,
            metric=self._metrics,
            mode=[o.ray_mode for o in objectives],
            sampler=sampler, study_name=study_name, storage=storage,
        )

    def _define_by_run(self, trial: optuna.Trial) -> dict[str, str]:
        """Sample, and record the architecture on the trial at once."""
        try:
            check_params(_enqueued_params(trial))
        except ValueError as err:
            # Optuna would raise without naming the trial, or ignore a name it never asks for.
            reason = f"enqueued with params outside the search space: {err}"
            trial.set_user_attr(FAIL_REASON, reason)
            trial.set_user_attr(REJECTED, True)
            self._rejected = (trial.number, reason)
            return {}
        arch = sample_arch(trial, self._input_size)
        text = arch.to_json(indent=None)
        trial.set_user_attr(ARCH, text)
        trial.set_user_attr(ARCH_STR, str(arch))
        self._asked = (trial, arch)
        preset = trial.user_attrs.get(PRESET)  # enqueued with it (search.driver.tune)
        return {ARCH_KEY: text, NUMBER_KEY: trial.number,
                **({PRESET_KEY: preset} if preset else {})}

    def _ask(self, key: str) -> dict[str, Any] | None:
        self._asked = self._rejected = None
        with warnings.catch_warnings():
            # Writing 53 parameters to SQLite takes ~1 s, which OptunaSearch warns about.
            warnings.filterwarnings("ignore", message="Define-by-run function")
            return super().suggest(key)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next architecture to train; duplicates on the way are served from the cache,
        and proposals over the size cap are pruned untrained.

        Each Optuna trial needs a key of its own in ``OptunaSearch``, so the asks after a
        duplicate go under ``<trial_id>:<attempt>``; Tune only ever sees ``trial_id``.
        """
        for attempt in range(MAX_UNTRAINED_IN_A_ROW + 1):
            key = f"{trial_id}:{attempt}" if attempt else trial_id
            config = self._ask(key)
            if self._rejected is not None:
                number, reason = self._rejected
                # On stderr as looked up now: Tune pickles the searcher, a stream it cannot.
                print(f"warning: trial {number} {reason}; marked FAIL", file=sys.stderr)
                super().on_trial_complete(key, error=True)
                continue
            if self._asked is None:
                return config
            trial, arch = self._asked
            if self._over_cap(key, trial, arch):
                continue
            hit = self._cache.lookup(arch)
            if hit is None:
                self._running[trial_id] = _Running(key, trial, arch)
                return config
            self._serve(key, trial, hit)
        warnings.warn(f"the sampler proposed {MAX_UNTRAINED_IN_A_ROW + 1} architectures in "
                      "a row that were trained already"
                      + (f" or over --max-params {self._size_cap.max_params:,}"
                         if self._size_cap else "")
                      + "; the search stops early", stacklevel=2)
        return Searcher.FINISHED

    def _over_cap(self, key: str, trial: optuna.Trial, arch: Arch) -> bool:
        """Whether ``trial`` is over the size cap; if so, tell it PRUNED. The presets are the
        paper's baselines: trained whatever their size."""
        if self._size_cap is None or trial.user_attrs.get(PRESET):
            return False
        params = self._size_cap.excess(arch)
        if params is None:
            return False
        trial.set_user_attr(PARAMS.metric, params)
        trial.set_user_attr(OVER_MAX_PARAMS, self._size_cap.max_params)
        super().on_trial_complete(key)  # no values, no error: OptunaSearch tells PRUNED
        return True

    def _serve(self, key: str, trial: optuna.Trial, hit: CachedEvaluation) -> None:
        """Record ``trial`` as a duplicate of ``hit`` and tell it COMPLETE."""
        start = time.perf_counter()
        for name, value in hit.served_attrs().items():
            trial.set_user_attr(name, value)
        trial.set_user_attr(WALL_SECONDS, time.perf_counter() - start)
        super().on_trial_complete(key, result=dict(zip(self._metrics, hit.values, strict=True)))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        running = self._running.pop(trial_id, None)
        if running is None:  # not handed out by this searcher: nothing to record
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        outcome = self._record(trial_id, running.trial, result or {}, error)
        trained = outcome == TrialState.COMPLETE
        if not trained:
            # OptunaSearch tells FAIL for "no values, error" and PRUNED for "no values".
            result, error = None, outcome == TrialState.FAIL
        super().on_trial_complete(running.key, result=result, error=error)
        if trained:
            self._cache.add(running.arch, running.trial.number,
                            [result[m] for m in self._metrics], json.loads(result[ATTRS_KEY]))

    def _record(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any],
                error: bool) -> TrialState:
        """Write user attrs; the state to tell: COMPLETE, PRUNED (stopped at a rung), or FAIL
        (with its :data:`~search.study.schema.FAIL_REASON`)."""
        if FAIL_KEY in result:
            trial.set_user_attr(FAIL_REASON, str(result[FAIL_KEY]))
            return TrialState.FAIL
        if ATTRS_KEY in result:
            _set_attrs(trial, json.loads(result[ATTRS_KEY]))
            return TrialState.COMPLETE
        stop = self._stopped_at(trial_id)
        if stop is not None and PARTIAL_KEY in result and not error:
            _set_attrs(trial, json.loads(result[PARTIAL_KEY]))
            trial.set_user_attr(PRUNED_EPOCH, stop.epoch)
            trial.set_user_attr(PRUNED_RUNG, stop.rung)
            trial.set_user_attr(PARTIAL_ACCURACY, result[self._metrics[0]])
            return TrialState.PRUNED
        if error and not self._stopping():  # its worker died
            reason = self._failure_reason(trial_id)
            trial.set_user_attr(FAIL_REASON, reason)
            trial.set_user_attr(WORKER_DIED, True)
            if reason.startswith(NODE_LOST_REASON):  # the cluster's failure: not counted
                trial.set_user_attr(NODE_LOST, True)
        else:  # Tune stopped it before its last report (the search was interrupted)
            trial.set_user_attr(FAIL_REASON, INTERRUPTED_REASON)
            trial.set_user_attr(INTERRUPTED, True)
        return TrialState.FAIL


def _enqueued_params(trial: optuna.Trial) -> dict[str, Any]:
    """The params ``trial`` was enqueued with, if any: only a frozen trial shows them, the
    running one of the same number."""
    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return enqueued_params(next(t for t in running if t.number == trial.number))


def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
