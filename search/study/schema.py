"""Every key a study or trial carries: the project's public data format.

Optuna's storage keeps these names, and optuna-dashboard, the reports, the exports and any
other tool that opens a study read them, so each is spelled and documented here once and
every reader and writer imports it. Stored studies are read by these names: a value here
never changes (a new meaning gets a new key). Four groups:

- **Study user attrs**: the search's setup, written by ``search.driver.tune`` when it
  creates the study (a resume checks them; ``scheduler`` is the latest run's), read by
  ``search.study.results.read_study_info``; and one ``export:<trial>`` per retrained
  export (``search.export``), since Optuna freezes a finished trial's attributes.
- **Trial user attrs**: what a trial was and scored, written by the driver
  (``search.driver.searcher``), most of them as ``search.training.evaluate`` reports them.
  The trials table (``trials.csv``, ``search.study.results``) names a column after the
  attr it shows.
- **The driver's lease**: a study *system* attr (``search.study.lease``).
- **Tune config and result keys** (the names ending in ``_KEY``): what passes between the
  driver and a trial in its Ray worker; the study never stores them as such.

The objectives' metric names (``val_accuracy``, ``params``, ``macs``, ``latency_ms``) are
also trial user attrs (the costs) and table columns; they are rows of
:mod:`search.study.objectives`, not spelled here. The ``metrics.json`` of ``search.train``
and ``search.export`` names what it shares with a study as a study does. This module
imports neither torch nor Ray.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

# --- study user attrs (search.driver.tune writes them once per study) --------------------
DATASET = "dataset"  # str: --dataset as given (a built-in name or folder:PATH)
INPUT_SHAPE = "input_shape"  # [channels, height, width]: the input the networks are built for
NUM_CLASSES = "num_classes"  # int: the classifier's outputs
CLASS_NAMES = "class_names"  # [str] by output index, or None where the dataset names none
# dict or None: an image folder's root, files and splits (search.data.folder), so a resume
# on changed files is refused
DATA_SOURCE = "data_source"
OBJECTIVE_NAMES = "objectives"  # [str]: the objectives' --objectives names, in study order
LATENCY_TARGET = "latency_target"  # str or None: the device a latency objective is for
TRAIN_CONFIG = "train_config"  # dict: every trial's search.training.TrainConfig, as asdict
BUDGET = "budget"  # str: the --budget preset the search started from
VAL_FRACTION = "val_fraction"  # float: share of the training split held out for validation
# dict: the latest run's scheduler (search.driver.scheduler.SchedulerSpec.study_attr), e.g.
# {"name": "mo-asha", "min_epochs": 1, "reduction_factor": 3, "rungs": [1, 3]}
SCHEDULER = "scheduler"
# export:<trial number> -> {TEST_ACCURACY: float in [0, 1], EXPORT_DIR: str}, written by
# search.export when it retrains that trial
EXPORT_ATTR_PREFIX = "export:"
TEST_ACCURACY = "test_accuracy"  # the retrained network's accuracy on the test split
EXPORT_DIR = "export_dir"  # the export's directory

# --- the study system attr of the driver's lease (search.study.lease) ----------------------
LEASE_KEY = "cse-nas:driver"  # JSON of search.study.lease.Lease: host, pid, heartbeat...

# --- trial user attrs (search.driver.searcher writes them) ---------------------------------
ARCH = "arch"  # str: the sampled space.Arch as JSON, written as soon as it is sampled
ARCH_STR = "arch_str"  # str: the same Arch in its one-line form, for people
PRESET = "preset"  # str: the preset an enqueued trial is (search.driver.tune enqueues it)
# [float]: validation accuracy after each epoch trained (rebuilds MO-ASHA's rungs on resume)
VAL_ACCURACY_PER_EPOCH = "val_accuracy_per_epoch"
TRAIN_SECONDS = "train_seconds"  # float, s: the training loop's own time (0: a duplicate)
# float, s: build + count + train + score; for a duplicate, serving it from the cache
WALL_SECONDS = "wall_seconds"
DEVICE = "device"  # str: the torch device it trained on
SEED = "seed"  # int: the training seed (weights, subset, batch order)
VERSIONS = "versions"  # {package: version}: Python and the packages the result depends on
PEAK_GPU_BYTES = "peak_gpu_bytes"  # int: most CUDA memory allocated at once (CUDA only)
# The Ray node that trained it (search.trials.trainable, from ray.get_runtime_context()):
NODE_IP = "node_ip"  # str: its IP address (nodes of one machine share it)
NODE_ID = "node_id"  # str: its Ray node id, hex: one per node, whatever the machine
# int: for a duplicate served from the evaluation cache, the number of the trial that was
# trained (search.study.evaluation_cache); it has that trial's other attrs
CACHED_FROM = "cached_from"
# str: why a FAIL trial failed: its error, CRASH_REASON, INTERRUPTED_REASON, or a reason
# that starts with NODE_LOST_REASON
FAIL_REASON = "fail_reason"
# True on a trial cut short by its search stopping: it failed for a reason outside its
# architecture, so it does not count against the trial budget.
INTERRUPTED = "interrupted"
# True on a trial whose Ray node was lost while it ran (its FAIL_REASON starts with
# NODE_LOST_REASON): the cluster's failure, not the architecture's, so it does not count
# against the trial budget either; a rerun trains another trial in its place.
NODE_LOST = "node_lost"
# True on a trial whose Ray worker died (killed by Ray's memory monitor, crashed, its node
# lost; search.driver.worker_deaths) rather than raised an error of its own: the machine's
# failure, which says nothing of the configuration (a run whose every trial raised one
# fails as a whole; search.driver.tune).
WORKER_DIED = "worker_died"
# A trial the scheduler stopped at a rung (search.driver.scheduler) is PRUNED, never
# COMPLETE, so no sampler and no front takes its partial accuracy for a final one:
PRUNED_EPOCH = "pruned_epoch"  # int: the epochs it trained
PRUNED_RUNG = "pruned_rung"  # int: the 0-based rung it was stopped at
PARTIAL_ACCURACY = "partial_val_accuracy"  # float: its validation accuracy then
# True on a trial enqueued (Optuna's enqueue_trial) with params outside the space: failed
# before anything was sampled or trained, it does not count against the budget either.
REJECTED = "rejected"
# int: the --max-params a sampled architecture was over. Such a trial is PRUNED before any
# training (so TPE learns to propose smaller ones) and does not count against the budget.
OVER_MAX_PARAMS = "over_max_params"

# FAIL_REASON's values for failures outside the objective (NODE_LOST_REASON: how one begins)
INTERRUPTED_REASON = "interrupted: the search stopped before this trial finished"
NODE_LOST_REASON = "node lost"
CRASH_REASON = ("the trial's Ray worker failed outside the objective (see error.txt in "
                "its trial directory)")

# --- Tune config and result keys (driver <-> trial; search.trials.trainable) ------------------
ARCH_KEY = ARCH  # in a trial's config: the sampled Arch as JSON, as the user attr
NUMBER_KEY = "number"  # in a trial's config: its number in the study, for progress lines
PRESET_KEY = PRESET  # in a trial's config: the enqueued preset it is, if any
ATTRS_KEY = "user_attrs"  # in a trial's final result: JSON of its user attributes
PARTIAL_KEY = "partial_attrs"  # in a result after an epoch short of the last: the same so far
EPOCH_KEY = "epoch"  # in every result: epochs trained so far
FAIL_KEY = FAIL_REASON  # in a trial's result: why the candidate failed, for the user attr


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
    count, nor do proposals over ``--max-params`` (never trained), trials the search's own
    stopping interrupted, that were lost with their Ray node, or that were enqueued outside
    the space."""
    return [
        t for t in study.get_trials(deepcopy=False)
        if (t.state == TrialState.COMPLETE and not is_cached(t))
        or (t.state == TrialState.PRUNED and OVER_MAX_PARAMS not in t.user_attrs)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)
            and not t.user_attrs.get(NODE_LOST) and not t.user_attrs.get(REJECTED))
    ]
