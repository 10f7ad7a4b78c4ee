"""Ray Tune runs the trials; Optuna samples them and keeps every one in an RDB study.

The driver (this process) is the study's only writer: :class:`search.driver.searcher.StudySearch`
records each trial's attributes and outcome. Trials run in Ray workers and only report
back, so SQLite is safe whatever the concurrency. A second driver on the same study is
refused (:mod:`search.study.lease`).

Resume: the study is the state. A rerun of the same command loads it, marks trials left
RUNNING by a killed search as FAIL (``interrupted``), enqueues every preset that has no
complete or pruned trial yet, rebuilds the scheduler's rungs from the finished trials
(:mod:`search.driver.scheduler`), and runs only what the trial budget still lacks. SIGINT or SIGTERM
stop the search cleanly (:mod:`search.driver.stopping`): the live trials are marked interrupted
at once and the exit status says which signal it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune

from cse_nets.cli import Interrupted, RunFailed, first_line
from search.data import Splits, load_dataset
from search.data.source import check_unchanged
from search.driver.address import check_ray_address
from search.driver.config import Budget, SearchConfig, check_budget_fits, check_config
from search.driver.progress import Progress, format_front
from search.driver.samplers import make_sampler
from search.driver.scheduler import SchedulerSpec, make_scheduler
from search.driver.searcher import SizeCap, StudySearch, check_size_cap
from search.driver.stopping import StopSignals
from search.driver.worker_deaths import FailureReasons, surviving_worker_deaths
from search.study.evaluation_cache import EvaluationCache
from search.study.lease import driver_lease
from search.study.objectives import Objective, fit_latency_corrections
from search.study.schema import (
    BUDGET,
    CLASS_NAMES,
    DATA_SOURCE,
    DATASET,
    FAIL_REASON,
    INPUT_SHAPE,
    INTERRUPTED,
    INTERRUPTED_REASON,
    LATENCY_TARGET,
    NODE_LOST,
    NUM_CLASSES,
    OBJECTIVE_NAMES,
    PRESET,
    SCHEDULER,
    TRAIN_CONFIG,
    VAL_FRACTION,
    WORKER_DIED,
    budget_trials,
    is_cached,
)
from search.study.storage import display_url, open_rdb_storage, writing_to_storage
from search.training import RECIPES, TrainConfig
from search.training.step import Speedups
from search.trials.memory import TrialMemory
from search.trials.packing import Packing, largest_arch, plan_gpu_packing
from search.trials.shared_data import SharedData
from search.trials.trainable import TrialResources, memory_request, run_trial
from space import preset, preset_params

__all__ = ["SearchError", "SearchResult", "fail_interrupted", "ray_session", "run_search"]


# One trial: (config, *, data, train_config, objectives, speedups, memory_fraction) -> None,
# reporting to Tune as search.trials.trainable.run_trial does.
Trainable = Callable[..., None]


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
    resources: TrialResources
    packing: Packing | None  # GPU trials only
    speedups: Speedups
    scheduler: SchedulerSpec
    trainable: Trainable

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.config.ordered_objectives


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)  # Tune's default spells out the whole config


# --- setup: everything that can reject the user's input, before any trial runs ----------

# A trial that errs is recorded with its cause in the study (and error.txt); Tune's own
# logs of it would add a traceback to the terminal for every such trial. Likewise a signal
# can cut Tune's save of its experiment folder short: the study is the search's state, so
# that failed save loses nothing and is no traceback for the user.
_SILENCED_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune",
                     "ray.tune.execution.experiment_state")


_SEARCH_ENV = {
    # Ray's own table would drown the progress lines; the old reporter at verbose=0 is quiet.
    "RAY_AIR_NEW_OUTPUT": "0",
    # SIGINT stops the search through search.driver.stopping; Tune's own handler would end
    # the run as if it had finished.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}


@contextlib.contextmanager
def _search_settings() -> Iterator[None]:
    """The environment variables and log levels a search wants, for the ``with`` block
    only: Ray reads the variables when it starts and when Tune runs, both inside it, and
    the process (a test, a notebook) gets its own settings back however the search ends."""
    saved_env = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", *_SEARCH_ENV)}
    loggers = [logging.getLogger(name) for name in _SILENCED_LOGGERS]
    saved_levels = [logger.level for logger in loggers]
    verbosity = optuna.logging.get_verbosity()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.update(_SEARCH_ENV)
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for logger, level in zip(loggers, saved_levels, strict=True):
            logger.setLevel(level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Ray, joined at ``address`` or started on this machine with all its CPUs/GPUs, and
    shut down when the block ends; inside another such block, that one's Ray.

    A caller running several searches (a benchmark) holds one session around them all:
    each search then skips Ray's start-up and its workers' imports (~10 s on 2 cores).
    """
    if ray.is_initialized():
        yield
        return
    if address is None:
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise SearchError(f"cannot join Ray cluster at {address}: "
                              f"{first_line(err)}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _cpus_and_gpus(config: SearchConfig, gpus: float) -> tuple[float, float]:
    """CPUs and ``gpus`` per trial; :class:`SearchError` if the cluster can never grant them
    (Tune would wait for them for ever)."""
    cluster = ray.cluster_resources()
    wanted = {"CPU": config.cpus_per_trial, "GPU": gpus}
    for name, amount in wanted.items():
        if amount > cluster.get(name, 0):
            raise SearchError(f"a trial asks for {amount:g} {name}(s) but the Ray cluster has "
                              f"{cluster.get(name, 0):g}")
    return wanted["CPU"], wanted["GPU"]


def _largest_node_memory() -> float:
    """The ``memory`` resource of the cluster's largest node: no trial may ask for more."""
    return max(node["Resources"].get("memory", 0) for node in ray.nodes() if node["Alive"])


def _shared_memory_request(memory: TrialMemory, input_size: int, cpus: float, gpus: float,
                           max_concurrent: int | None) -> int:
    """The space's largest network's memory request if every node has the memory for as
    many of those as its CPUs and GPUs run at once, else 0.

    Then declaring it for every trial costs no concurrency, and since all trials ask alike,
    Tune runs each in a worker a finished trial left (no new process: ~9 s of CPU saved per
    trial). Where memory can be the limit, trials ask for their own estimates.
    """
    request = memory_request(memory.estimate(largest_arch(input_size)))
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        resources = node["Resources"]
        slots = resources.get("CPU", 0) // cpus if cpus else math.inf
        if gpus:
            slots = min(slots, resources.get("GPU", 0) // gpus)
        if max_concurrent:
            slots = min(slots, max_concurrent)
        if slots * request > resources.get("memory", 0):
            return 0
    return request


def _study_attrs(plan: _Plan) -> dict[str, Any]:
    info, config = plan.splits.info, plan.config
    return {
        DATASET: info.name,
        INPUT_SHAPE: list(info.shape.chw),
        NUM_CLASSES: info.shape.num_classes,
        CLASS_NAMES: list(info.class_names) if info.class_names else None,
        DATA_SOURCE: info.source,  # an image folder: where, which files, which splits
        OBJECTIVE_NAMES: [o.name for o in config.ordered_objectives],
        LATENCY_TARGET: next((o.target for o in config.ordered_objectives if o.target), None),
        TRAIN_CONFIG: asdict(plan.train_config),
        BUDGET: config.budget,
        VAL_FRACTION: plan.budget.val_fraction,  # the split's seed is train_config's seed
        # The latest run's: a resume may change it, as every trial's per-epoch accuracies
        # rebuild any rungs (search.driver.scheduler).
        SCHEDULER: plan.scheduler.study_attr(plan.budget.epochs),
    }


def _create_or_load_study(config: SearchConfig,
                          storage: optuna.storages.RDBStorage) -> optuna.Study:
    """The study, created if new (its lease lives in it). This handle reads and enqueues;
    the sampling handle is :class:`StudySearch`'s own."""
    return optuna.create_study(
        storage=storage, study_name=config.study, load_if_exists=True,
        directions=[o.direction for o in config.ordered_objectives],
    )


def _comparable(train_config: Any) -> Any:
    """A train config as JSON stores it, without the fields that change memory use but never
    results; a field added since the study was made has its default, which is how that
    study was trained."""
    if not isinstance(train_config, dict):
        return train_config
    full = json.loads(json.dumps({**asdict(TrainConfig()), **train_config}))
    return {k: v for k, v in full.items() if k != "eval_batch_size"}


def _check_study(study: optuna.Study, config: SearchConfig, attrs: dict[str, Any]) -> None:
    """Record the setup in a new study; refuse to resume one run with another setup."""
    objectives = config.ordered_objectives
    if not study.user_attrs:  # new
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still there in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in objectives])
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return
    if study.user_attrs.get(SCHEDULER) != attrs[SCHEDULER]:
        study.set_user_attr(SCHEDULER, attrs[SCHEDULER])
    recorded = {**study.user_attrs,
                TRAIN_CONFIG: _comparable(study.user_attrs.get(TRAIN_CONFIG))}
    wanted = {**attrs, TRAIN_CONFIG: _comparable(attrs[TRAIN_CONFIG])}
    differs = [key for key in (DATASET, INPUT_SHAPE, OBJECTIVE_NAMES, LATENCY_TARGET,
                               TRAIN_CONFIG, VAL_FRACTION)
               if recorded.get(key) != wanted[key]]
    if differs:
        raise SearchError(
            f"study {config.study!r} in {display_url(config.storage_url)} was run with another "
            f"{', '.join(differs)}; rerun it with its own flags or choose a new --study-name")
    # The flags agree; the image folder must too (search.export and search.report ask the same).
    check_unchanged(recorded.get(DATA_SOURCE), wanted[DATA_SOURCE], config.study)


def fail_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark trials left RUNNING by a search that died as FAIL (``interrupted``)."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in stale:
        # A trial this process did not hand out is written through the storage, by the id
        # its number has there.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, FAIL_REASON, INTERRUPTED_REASON)
        storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def _missing_presets(study: optuna.Study, names: tuple[str, ...]) -> list[str]:
    """Presets with no complete or pruned trial that are not already waiting in the queue."""
    have = {t.user_attrs.get(PRESET) for t in study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING))}
    return [name for name in names if name not in have]


def _enqueue_presets(study: optuna.Study, names: tuple[str, ...], input_size: int,
                     limit: int, out: TextIO) -> None:
    for name in _missing_presets(study, names)[:limit]:
        try:
            params = preset_params(preset(name), input_size)
        except ValueError as err:
            print(f"warning: preset {name} skipped: {err}", file=out)
            continue
        study.enqueue_trial(params, user_attrs={PRESET: name})


# --- the search -----------------------------------------------------------------------------

def run_search(config: SearchConfig, *, out: TextIO = sys.stdout,
               trainable: Trainable = run_trial) -> SearchResult:
    """Run (or resume) the search of ``config`` until the study holds ``trials`` trials.

    :class:`SearchError` (or another ``ValueError``) for input the search cannot use
    (dataset, a budget it cannot serve, storage, cluster, a study run with other
    settings), before Ray starts where it can be known then; the trials' own failures are
    recorded, not raised, unless every trial this call trained failed
    (:class:`cse_nets.cli.RunFailed`, with the commonest reason).
    ``trainable`` runs one trial (:func:`search.trials.trainable.run_trial`, the real
    training; tests give one with known learning curves). Inside :func:`ray_session` the
    search runs on that session's Ray (``config.address`` is then the session's business)
    and leaves it running.
    """
    start = time.perf_counter()
    check_config(config)
    if config.address is not None:
        check_ray_address(config.address)
    # The data, checked against the budget before Ray starts and before the storage or the
    # study records anything: a configuration no trial can train with is one line now, not
    # a study of failed trials whose recorded configuration then refuses the corrected rerun.
    data = _load_data(config, gpu=_expect_gpu(config))
    storage = open_rdb_storage(config.storage_url,
                               config.results_dir if config.storage is None else None)
    # A full disk or a read-only database fails any write of the study: one line.
    with writing_to_storage("the search's trials"), _search_settings():
        study = _create_or_load_study(config, storage)
        with driver_lease(storage, config.study, take_over=config.take_over, out=out), \
                StopSignals() as stop, ray_session(config.address):
            stop.install()  # over the handlers ray.init installs
            return _search(_plan(config, trainable, data), study, storage, stop, out, start)


@dataclass(frozen=True)
class _Data:
    """The dataset, split and checked for the budget of the trials' device."""

    gpu: bool  # the device the budget is for
    budget: Budget
    scheduler: SchedulerSpec
    splits: Splits


def _expect_gpu(config: SearchConfig) -> bool:
    """Whether the trials will train on GPUs, as far as is known before Ray starts:
    ``--gpus-per-trial``, else this machine's GPUs for a Ray started here. A cluster's
    GPUs are known once Ray has joined it; ``_plan`` loads the data again if they differ."""
    if config.gpus_per_trial is not None:
        return config.gpus_per_trial > 0
    return config.address is None and torch.cuda.is_available()


def _load_data(config: SearchConfig, *, gpu: bool) -> _Data:
    budget = config.resolve_budget(gpu=gpu)
    scheduler = config.scheduler_spec(gpu=gpu)  # refuses mo-asha without a rung to stop at
    # A missing dataset raises DatasetError, a ValueError: the CLI's one-line bad input.
    splits = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                          val_fraction=budget.val_fraction, input_size=config.input_size,
                          strict_images=config.strict_images)
    if config.max_params is not None:
        check_size_cap(config.max_params, splits.info.shape)
    return _Data(gpu=gpu, budget=check_budget_fits(budget, splits, config.seed),
                 scheduler=scheduler, splits=splits)


def _plan(config: SearchConfig, trainable: Trainable, data: _Data) -> _Plan:
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpu = cluster_gpus > 0 if config.gpus_per_trial is None else config.gpus_per_trial > 0
    if gpu != data.gpu:
        data = _load_data(config, gpu=gpu)
    budget, scheduler, splits = data.budget, data.scheduler, data.splits
    train_config = replace(
        RECIPES["default"], epochs=budget.epochs, batch_size=budget.batch_size,
        subset=budget.subset, seed=config.seed, device="cuda" if gpu else "cpu",
        lr=config.lr or RECIPES["default"].lr,
    )
    # Under mo-asha the schedule anneals to 0 at every rung and restarts, so a rung compares
    # annealed models, not mid-schedule snapshots (README "Proxy fidelity": Spearman 0.71
    # against 0.45 at the first rung). fifo has no rungs: one schedule.
    train_config = replace(train_config, anneal_at=scheduler.rungs(budget.epochs))
    splits = splits.for_trials()
    packing = None
    if gpu and cluster_gpus > 0:  # else _cpus_and_gpus refuses the GPUs asked for
        train_config = config.speedups.scale_batch(train_config)
        packing = plan_gpu_packing(splits, train_config, gpus_per_trial=config.gpus_per_trial,
                                   pack=config.gpu_speedups)
    cpus, gpus = _cpus_and_gpus(
        config, packing.gpus_per_trial if packing else config.gpus_per_trial or 0.0)
    memory = TrialMemory.for_search(splits, train_config)
    resources = TrialResources(
        cpu=cpus, gpu=gpus, memory=memory, max_memory=_largest_node_memory(),
        floor=_shared_memory_request(memory, splits.info.shape.input_size, cpus, gpus,
                                     config.max_concurrent))
    return _Plan(config=config, budget=budget, splits=splits, train_config=train_config,
                 resources=resources, packing=packing, speedups=config.speedups,
                 scheduler=scheduler, trainable=trainable)


def _search(plan: _Plan, study: optuna.Study, storage: optuna.storages.RDBStorage,
            stop: StopSignals, out: TextIO, start: float) -> SearchResult:
    config, budget = plan.config, plan.budget
    _check_study(study, config, _study_attrs(plan))
    interrupted = fail_interrupted(study, storage)
    if interrupted:
        print(f"resuming: {interrupted} interrupted trial(s) marked FAIL", file=out)
    existing = len(study.trials)
    remaining = budget.trials - len(budget_trials(study))
    _enqueue_presets(study, config.presets, plan.splits.info.shape.input_size, remaining, out)
    print(f"study {config.study}: {budget.trials - remaining}/{budget.trials} trials done; "
          f"{budget.epochs} epoch(s) on {budget.subset:g} of the training split, batch "
          f"{budget.batch_size}, {plan.resources.cpu:g} CPU / {plan.resources.gpu:g} "
          f"GPU per trial, sampler {config.sampler}"
          + (f" (no network over {config.max_params:,} params)" if config.max_params else "")
          + f", scheduler {_describe_scheduler(plan)}", file=out)
    experiment_dir = None
    if remaining > 0:
        fit_latency_corrections(plan.objectives, plan.splits.info.shape,
                                progress=lambda line: print(line, file=out, flush=True))
        try:
            with stop.deferred():
                experiment_dir = _tune(plan, study, storage, remaining, stop, out)
        except KeyboardInterrupt:  # Ray's C code re-raises our Interrupted as a plain one
            if stop.signum is None:
                raise
            # SIGTERM or a second signal: Tune did not finish, but the study says enough.
    if stop.signum is not None:
        fail_interrupted(study, storage)  # the live trials Tune stopped: now, not next run
        raise Interrupted(f"interrupted: {len(budget_trials(study))} of {budget.trials} "
                          "trials; rerun the same command to resume", 128 + stop.signum)
    print(format_front(study), file=out)
    shown = display_url(config.storage_url)
    print(f"study:   {config.study} in {shown} (optuna-dashboard {shown})", file=out)
    if experiment_dir is not None:
        print(f"trials:  {experiment_dir}", file=out)
    lost = sum(bool(t.user_attrs.get(NODE_LOST)) for t in study.get_trials(deepcopy=False)
               if t.number >= existing)
    if lost:
        print(f"{lost} trial(s) lost with their Ray node do not count towards --trials; "
              "rerun the same command to train as many in their place", file=out)
    failure = _every_trial_failed(study, existing)
    if failure is not None:
        raise RunFailed(failure)
    return SearchResult(
        study_name=config.study, storage_url=config.storage_url,
        experiment_dir=experiment_dir, ran=len(study.trials) - existing,
        counted=len(budget_trials(study)), wall_seconds=time.perf_counter() - start,
    )


def _every_trial_failed(study: optuna.Study, first: int) -> str | None:
    """One line when trials numbered from ``first`` were trained, none completed, and some
    failed with an error of their own (an exit status of 0 would pass for a search: a
    configuration no trial can train with shows there), with the commonest such reason;
    else None. Trials whose worker died are the machine's failures, reported per trial,
    as when other trials complete."""
    trained = [t for t in study.get_trials(deepcopy=False)
               if t.number >= first and t.state.is_finished() and not is_cached(t)]
    if any(t.state != TrialState.FAIL for t in trained):
        return None
    own = [t for t in trained if not t.user_attrs.get(WORKER_DIED)]
    if not own:
        return None
    reasons = Counter(str(t.user_attrs.get(FAIL_REASON, "no reason recorded")) for t in own)
    reason, count = reasons.most_common(1)[0]
    if count == len(trained):
        return f"every trial failed, all {count} with: {reason}"
    return (f"every trial failed, {count} of {len(trained)} with: {reason} (the others' "
            f"fail_reason is in study {study.study_name!r})")


def _describe_scheduler(plan: _Plan) -> str:
    spec = plan.scheduler
    if spec.name == "fifo":
        return "fifo"
    rungs = ", ".join(map(str, spec.rungs(plan.budget.epochs)))
    return f"{spec.name} (rungs at epoch {rungs}, eta {spec.reduction_factor})"


def _tune(plan: _Plan, study: optuna.Study, storage: optuna.storages.RDBStorage,
          remaining: int, stop: StopSignals, out: TextIO) -> Path:
    config = plan.config
    # Offset the seed by the study's size so a resumed search does not replay the random
    # draws of the run before it.
    sampler = make_sampler(config.sampler, seed=config.seed + len(study.trials),
                           trials=plan.budget.trials, shape=plan.splits.info.shape,
                           max_params=config.max_params)
    reasons = FailureReasons()
    scheduler = make_scheduler(plan.scheduler, plan.objectives, plan.budget.epochs)
    replayed = scheduler.replay(study.get_trials(deepcopy=False))
    if replayed and plan.scheduler.name != "fifo":
        print(f"{plan.scheduler.name}: rungs rebuilt from {replayed} earlier trial(s)",
              file=out)
    searcher = StudySearch(input_size=plan.splits.info.shape.input_size,
                           objectives=plan.objectives, study_name=config.study,
                           sampler=sampler, storage=storage,
                           cache=EvaluationCache.from_trials(
                               study.get_trials(deepcopy=False), plan.splits.info.shape.input_size),
                           size_cap=(None if config.max_params is None
                                     else SizeCap(config.max_params, plan.splits.info.shape)),
                           stopping=stop.stop_all, failure_reason=reasons.reason,
                           stopped_at=scheduler.stopped_at)
    # The splits go to the object store once, and to each worker's device once
    # (search.trials.shared_data); trials on any node read them from there.
    trainable = tune.with_resources(
        tune.with_parameters(plan.trainable, data=SharedData.put(plan.splits),
                             train_config=plan.train_config, objectives=plan.objectives,
                             speedups=plan.speedups,
                             memory_fraction=plan.packing and plan.packing.memory_fraction),
        plan.resources.placement,
    )
    experiment = f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    storage_path = (config.results_dir / "ray" / config.study).resolve()
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=remaining,
            max_concurrent_trials=config.max_concurrent,
            trial_dirname_creator=_trial_dirname,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=experiment, storage_path=str(storage_path), verbose=0, stop=stop,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[reasons, Progress(study, plan.budget.trials, out,
                                                  epochs=plan.budget.epochs)],
        ),
    )
    with surviving_worker_deaths():
        tuner.fit()
    return storage_path / experiment
