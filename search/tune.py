"""Ray Tune runs the trials; Optuna samples them and keeps every one in an RDB study.

The driver (this process) is the study's only writer: :class:`search.searcher.StudySearch`
records each trial's attributes and outcome. Trials run in Ray workers and only report
back, so SQLite is safe whatever the concurrency; several drivers on one study would need
a server database and are not supported (a restart marks every RUNNING trial as
interrupted).

Resume: the study is the state. A rerun of the same command loads it, marks trials left
RUNNING by a killed search as FAIL (``interrupted``), and runs only what the trial budget
still lacks; presets are enqueued once, into a new study.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
import ray
from optuna.trial import TrialState
from ray import tune

from cse_nets.cli import first_line
from search.cache import EvaluationCache
from search.config import Budget, SearchConfig
from search.data import Splits, load_dataset
from search.objective import train_and_score
from search.objectives import Objective
from search.progress import Progress, budget_trials, format_front
from search.samplers import make_sampler
from search.searcher import (
    ARCH_KEY,
    ATTRS_KEY,
    FAIL_KEY,
    INTERRUPTED,
    INTERRUPTED_REASON,
    StudySearch,
)
from search.storage import open_rdb_storage
from search.train import RECIPES, TrainConfig
from space import Arch, preset, preset_params

__all__ = ["SearchError", "SearchResult", "fail_interrupted", "run_search"]


class SearchError(ValueError):
    """Bad input found while setting the search up; the message is one line."""


@dataclass(frozen=True)
class SearchResult:
    """Where a finished (or already complete) search left its results."""

    study_name: str
    storage_url: str
    experiment_dir: Path | None  # Ray Tune's trial directories (None: nothing ran)
    ran: int  # trials this invocation added to the study
    counted: int  # trials in the study that count towards the budget
    wall_seconds: float


@dataclass(frozen=True)
class _Plan:
    """Everything one invocation of the search decided before any trial runs."""

    config: SearchConfig
    budget: Budget
    splits: Splits
    train_config: TrainConfig
    resources: dict[str, float]  # per trial: "cpu", "gpu"

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.config.ordered_objectives


def _run_trial(config: dict[str, Any], *, splits: Splits, train_config: TrainConfig,
               objectives: Sequence[Objective]) -> None:
    """The Tune trainable: one candidate, reported once, never raising for its own failure."""
    names = [o.metric for o in objectives]
    arch = Arch.from_json(config[ARCH_KEY])
    try:
        evaluation = train_and_score(arch, splits, train_config, objectives)
    except Exception as err:  # NaN loss, out of memory, unbuildable: the trial's FAIL
        # Tune insists on the metrics in every result; StudySearch tells Optuna FAIL.
        reason = f"{type(err).__name__}: {first_line(err)}"
        tune.report({**dict.fromkeys(names, math.nan), FAIL_KEY: reason})
        return
    metrics = dict(zip(names, evaluation.values(objectives), strict=True))
    tune.report({**metrics, ATTRS_KEY: json.dumps(evaluation.user_attrs())})


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)  # Tune's default spells out the whole config


# --- setup: everything that can reject the user's input, before any trial runs ----------

def _start_ray(address: str | None) -> None:
    """Join ``address``, or start a Ray instance on this machine with all its CPUs/GPUs."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Ray's own table would drown the progress lines; the old reporter at verbose=0 is quiet.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    if address is None:
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise SearchError(f"cannot join Ray cluster at {address}: {first_line(err)}") from None


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minute of retries, when nothing listens there."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SearchError(f"address must be host:port (or auto), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise SearchError(f"cannot reach Ray cluster at {address}: "
                          f"{err.strerror or err}") from None


def _trial_resources(config: SearchConfig) -> dict[str, float]:
    """CPUs and GPUs per trial; :class:`SearchError` if the cluster can never grant them
    (Tune would wait for them for ever)."""
    cluster = ray.cluster_resources()
    gpus = config.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) > 0 else 0.0
    wanted = {"CPU": config.cpus_per_trial, "GPU": gpus}
    for name, amount in wanted.items():
        if amount > cluster.get(name, 0):
            raise SearchError(f"a trial asks for {amount:g} {name}(s) but the Ray cluster has "
                              f"{cluster.get(name, 0):g}")
    return {"cpu": wanted["CPU"], "gpu": wanted["GPU"]}


def _study_attrs(plan: _Plan) -> dict[str, Any]:
    info, config = plan.splits.info, plan.config
    return {
        "dataset": info.name,
        "input_shape": list(info.shape.chw),
        "num_classes": info.shape.num_classes,
        "class_names": list(info.class_names) if info.class_names else None,
        "data_source": info.source,  # an image folder: where, which files, which splits
        "objectives": [o.name for o in config.ordered_objectives],
        "latency_target": next((o.target for o in config.ordered_objectives if o.target),
                               None),
        "train_config": asdict(plan.train_config),
        "budget": config.budget,
        "val_fraction": plan.budget.val_fraction,  # the split's seed is train_config's seed
    }


def _open_study(config: SearchConfig, storage: optuna.storages.RDBStorage,
                attrs: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it and check that it was run with the same setup.

    This handle reads and enqueues; the sampling handle is :class:`StudySearch`'s own.
    """
    objectives = config.ordered_objectives
    study = optuna.create_study(
        storage=storage, study_name=config.study, load_if_exists=True,
        directions=[o.direction for o in objectives],
    )
    if not study.user_attrs:  # new
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still there in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in objectives])
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    differs = [key for key in ("dataset", "input_shape", "objectives", "latency_target",
                               "train_config", "val_fraction", "data_source")
               if study.user_attrs.get(key) != attrs[key]]
    if differs:
        raise SearchError(
            f"study {config.study!r} in {config.storage_url} was run with another "
            f"{', '.join(differs)}; rerun it with its own flags or choose a new --study-name")
    return study


def fail_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark trials left RUNNING by a search that died as FAIL (``interrupted``)."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        # Optuna offers no public way to write to a trial it did not hand out in this
        # process; _trial_id is the storage key (pinned optuna<6, tested in test_search_study).
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", INTERRUPTED_REASON)
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def _enqueue_presets(study: optuna.Study, names: tuple[str, ...], input_size: int,
                     limit: int, out: TextIO) -> None:
    for name in names[:limit]:
        try:
            params = preset_params(preset(name), input_size)
        except ValueError as err:
            print(f"warning: preset {name} skipped: {err}", file=out)
            continue
        study.enqueue_trial(params, user_attrs={"preset": name})


# --- the search -----------------------------------------------------------------------------

def run_search(config: SearchConfig, *, out: TextIO = sys.stdout) -> SearchResult:
    """Run (or resume) the search of ``config`` until the study holds ``trials`` trials.

    :class:`SearchError` for input the search cannot use (dataset, storage, cluster, a
    study run with other settings); the trials' own failures are recorded, not raised.
    """
    start = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config.address is not None:
        _check_reachable(config.address)
    storage = open_rdb_storage(config.storage_url,
                               config.results_dir if config.storage is None else None)
    _start_ray(config.address)
    try:
        return _search(_plan(config), storage, out, start)
    finally:
        ray.shutdown()


def _plan(config: SearchConfig) -> _Plan:
    resources = _trial_resources(config)
    gpu = resources["gpu"] > 0
    budget = config.resolve_budget(gpu=gpu)
    # A missing dataset raises DatasetError, a ValueError: the CLI's one-line bad input.
    splits = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                          val_fraction=budget.val_fraction, input_size=config.input_size,
                          strict_images=config.strict_images)
    train_config = replace(
        RECIPES["default"], epochs=budget.epochs, batch_size=budget.batch_size,
        subset=budget.subset, seed=config.seed, device="cuda" if gpu else "cpu",
        lr=config.lr or RECIPES["default"].lr,
    )
    return _Plan(config=config, budget=budget, splits=splits, train_config=train_config,
                 resources=resources)


def _search(plan: _Plan, storage: optuna.storages.RDBStorage, out: TextIO,
            start: float) -> SearchResult:
    config, budget = plan.config, plan.budget
    study = _open_study(config, storage, _study_attrs(plan))
    interrupted = fail_interrupted(study, storage)
    if interrupted:
        print(f"resuming: {interrupted} interrupted trial(s) marked FAIL", file=out)
    existing = len(study.trials)
    if not existing:
        _enqueue_presets(study, config.presets, plan.splits.info.shape.input_size,
                         budget.trials, out)
    remaining = budget.trials - len(budget_trials(study))
    print(f"study {config.study}: {budget.trials - remaining}/{budget.trials} trials done; "
          f"{budget.epochs} epoch(s) on {budget.subset:g} of the training split, batch "
          f"{budget.batch_size}, {plan.resources['cpu']:g} CPU / {plan.resources['gpu']:g} "
          f"GPU per trial, sampler {config.sampler}", file=out)
    experiment_dir = _tune(plan, study, storage, remaining, out) if remaining > 0 else None
    print(format_front(study), file=out)
    print(f"study:   {config.study} in {config.storage_url} "
          f"(optuna-dashboard {config.storage_url})", file=out)
    if experiment_dir is not None:
        print(f"trials:  {experiment_dir}", file=out)
    return SearchResult(
        study_name=config.study, storage_url=config.storage_url,
        experiment_dir=experiment_dir, ran=len(study.trials) - existing,
        counted=len(budget_trials(study)), wall_seconds=time.perf_counter() - start,
    )


def _tune(plan: _Plan, study: optuna.Study, storage: optuna.storages.RDBStorage,
          remaining: int, out: TextIO) -> Path:
    config = plan.config
    # Offset the seed by the study's size so a resumed search does not replay the random
    # draws of the run before it.
    sampler = make_sampler(config.sampler, seed=config.seed + len(study.trials),
                           trials=plan.budget.trials)
    searcher = StudySearch(input_size=plan.splits.info.shape.input_size,
                           objectives=plan.objectives, study_name=config.study,
                           sampler=sampler, storage=storage,
                           cache=EvaluationCache.from_trials(study.get_trials(deepcopy=False)))
    # Splits go to the object store once (tune.with_parameters), so trials on other nodes
    # need no copy of the dataset.
    trainable = tune.with_resources(
        tune.with_parameters(_run_trial, splits=plan.splits, train_config=plan.train_config,
                             objectives=plan.objectives),
        plan.resources,
    )
    experiment = f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    storage_path = (config.results_dir / "ray" / config.study).resolve()
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=remaining,
            max_concurrent_trials=config.max_concurrent,
            trial_dirname_creator=_trial_dirname,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=experiment, storage_path=str(storage_path), verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[Progress(study, plan.budget.trials, out)],
        ),
    )
    tuner.fit()
    return storage_path / experiment
