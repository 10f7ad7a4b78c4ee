"""What one search is: command-line flags -> a validated, frozen :class:`SearchConfig`.

Named budgets fix the training cost of a trial (epochs, the fraction of the training split,
batch size) and a default trial count, separately for CPU and GPU trials; flags given
explicitly override them. Every check of user input is made from here (the values when a
config is made, what they name on disk in :func:`check_config`), so ``python -m search.run``
can reject bad input with one line before Ray starts.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from cse_nets.cli import OneLineParser
from cse_nets.latency.measure import DEFAULT_TARGET, TARGETS
from cse_nets.latency.table import check_table_dir
from search.data import DATASETS, FOLDER_PREFIX, Splits, dataset_slug, is_dataset, stratified_split
from search.data.arguments import add_data_arguments
from search.data.folder import scan_folder
from search.driver.samplers import DEFAULT_SAMPLER, SAMPLERS
from search.driver.scheduler import SCHEDULERS, SchedulerSpec
from search.study.objectives import (
    OBJECTIVES,
    Objective,
    objectives_from_names,
)
from search.study.storage import (
    DEFAULT_RESULTS_DIR,
    check_storage_url,
    check_study_name,
    default_storage,
)
from search.training.step import Speedups
from space import DATASET_SHAPES, PRESETS
from space.checks import positive_int, seed_int
from space.footprint import check_dataset_fits

__all__ = [
    "BUDGETS",
    "DEFAULT_PRESETS",
    "Budget",
    "SearchConfig",
    "build_parser",
    "check_budget_fits",
    "check_config",
    "parse_config",
]

DEFAULT_PRESETS = ("paper-mix", "mobilenetv2")


@dataclass(frozen=True)
class Budget:
    """The cost of one trial and how many trials a search runs."""

    trials: int
    epochs: int
    subset: float  # fraction of the training split a trial trains on
    batch_size: int
    val_fraction: float  # of the training set, held out to score trials on
    scheduler: str = "fifo"  # search.driver.scheduler: fifo, or mo-asha to stop poor trials early
    min_epochs: int = 1  # mo-asha's first rung
    reduction_factor: int = 3  # mo-asha's eta

    @property
    def scheduler_spec(self) -> SchedulerSpec:
        spec = SchedulerSpec(self.scheduler, self.min_epochs, self.reduction_factor)
        spec.check(self.epochs)
        return spec


# The CPU rows, from benchmarks/bench_fidelity.py (README "Proxy fidelity"): how well a
# proxy ranks 34 reference architectures (Fashion-MNIST 16x16, 8 epochs on 15%), Spearman
# [95% bootstrap interval] at CPU-seconds per architecture, all 1 epoch unless said:
#   3% at 28 px (smoke)           0.02 [-0.33, 0.38]  20 s   pipeline check, ranks at chance
#   10% at 28 px (quick before)   0.54 [0.28, 0.73]   67 s
#   10% at 16 px                  0.76 [0.52, 0.90]   24 s   (EMA-scored 0.73, 2 epochs 0.69)
#   20% at 16 px                  0.73 [0.47, 0.89]   46 s   Pareto ranks 0.91
#   10% at 16 px, 3 epochs        0.86 [0.73, 0.93]   71 s
#   30% at 16 px (quick now)      0.89 [0.77, 0.95]   66 s   Pareto ranks 0.94, top-5 0.8
# Seed noise in the reference caps what any proxy can show at about 0.96 (README).
# So quick trains 1 epoch on 30%: more images beat more passes over fewer, and at 16 px
# that costs what 10% at 28 px did. (make search runs 32 trials on 10% instead: 16 trials
# on 30% leave fronts too narrow in size; the README's "Measured" has both.) CPU standard
# (5 epochs on 25% at 28 px: 12.5x the image-passes of the 67 CPU-s above, ~800 CPU-s per
# trial) is kept, unmeasured: it costs ~3x the reference's own training (275 CPU-s), so
# this reference cannot judge it.
# The GPU rows are estimates until a GPU run measures them. mo-asha only where it saves
# epochs: at 15 epochs, not at the CPU rows' 5 (README "Schedulers"). Its rungs anneal
# (search.driver.tune): epoch 1 of a 15-epoch schedule ranked the reference set at 0.38
# [0.03, 0.66], the same epoch annealed at 0.76 [0.52, 0.90].
BUDGETS: dict[str, dict[str, Budget]] = {
    "smoke": {
        "cpu": Budget(trials=16, epochs=1, subset=0.03, batch_size=64, val_fraction=0.02),
        "gpu": Budget(trials=16, epochs=2, subset=0.1, batch_size=128, val_fraction=0.1),
    },
    "quick": {
        "cpu": Budget(trials=16, epochs=1, subset=0.3, batch_size=64, val_fraction=0.05),
        "gpu": Budget(trials=64, epochs=5, subset=0.25, batch_size=128, val_fraction=0.1),
    },
    "standard": {
        "cpu": Budget(trials=64, epochs=5, subset=0.25, batch_size=128, val_fraction=0.1),
        "gpu": Budget(trials=200, epochs=15, subset=0.5, batch_size=128, val_fraction=0.1,
                      scheduler="mo-asha", min_epochs=1, reduction_factor=3)
    },
}


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0
                                  and math.isfinite(value)):
        raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class SearchConfig:
    """A whole search. ``None`` means "from the budget" or "decided when Ray has started"."""

    dataset: str
    budget: str = "standard"
    trials: int | None = None
    epochs: int | None = None
    subset: float | None = None  # fraction of the training split, in (0, 1]
    batch_size: int | None = None
    val_fraction: float | None = None  # of the training set, in (0, 1)
    lr: float | None = None  # peak learning rate (None: the default recipe's)
    input_size: int | None = None  # resize images to this side (None: dataset default)
    data_dir: Path | None = None
    strict_images: bool = False  # folder datasets: an undecodable image is an error
    objectives: tuple[str, ...] = ("accuracy", "params")
    latency_target: str = DEFAULT_TARGET  # where a latency objective is measured
    sampler: str = DEFAULT_SAMPLER
    max_params: int | None = None  # sampled architectures over this are not trained
    scheduler: str | None = None  # fifo or mo-asha (None: the budget's)
    min_epochs: int | None = None
    reduction_factor: int | None = None
    seed: int = 0
    presets: tuple[str, ...] = DEFAULT_PRESETS
    study_name: str | None = None
    storage: str | None = None  # Optuna RDB URL (None: SQLite file in results_dir)
    results_dir: Path = DEFAULT_RESULTS_DIR
    cpus_per_trial: float = 1.0
    # None ("auto"): trials packed several to a GPU (search.trials.packing) if the cluster has GPUs,
    # else 0.
    gpus_per_trial: float | None = None
    # GPU speed-ups of the training step (search.training.step), each off until a GPU run
    # measures it.
    cuda_graphs: bool = False
    compile_min_epochs: int = 0
    batch_scale: int = 1
    gpu_speedups: bool = True  # False: none of the above, and one trial per GPU (debugging)
    max_concurrent: int | None = None  # None: as many as the resources allow
    address: str | None = None  # an existing Ray cluster (None: start one here)
    take_over: bool = False  # take the study's lease from a search that seems alive

    def __post_init__(self) -> None:
        # The values alone: a config is made and replaced freely, so making one reads no
        # disk; what it names there is check_config's.
        if not is_dataset(self.dataset):
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of "
                             f"{', '.join(DATASETS)} or {FOLDER_PREFIX}PATH")
        for kind, value, names in (("budget", self.budget, tuple(BUDGETS)),
                                   ("sampler", self.sampler, tuple(SAMPLERS)),
                                   *(("preset", name, tuple(PRESETS)) for name in self.presets)):
            if value not in names:
                raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(names)}")
        objectives_from_names(self.objectives, latency_target=self.latency_target)
        for name in ("trials", "epochs", "batch_size", "input_size", "max_concurrent",
                     "max_params"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name.replace("_", "-"))
        if self.input_size is not None and self.dataset in DATASET_SHAPES:
            # Refused here, before Ray starts, not in a trial (folders: their own memory rule).
            check_dataset_fits(self.dataset, replace(DATASET_SHAPES[self.dataset],
                                                     input_size=self.input_size))
        seed_int(self.seed, "seed")
        self._check_scheduler()  # its name and rungs: SchedulerSpec's checks
        if self.subset is not None and not 0 < self.subset <= 1:
            raise ValueError(f"subset must be in (0, 1], got {self.subset!r}")
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise ValueError(f"val-fraction must be in (0, 1), got {self.val_fraction!r}")
        _positive("lr", self.lr)
        _positive("cpus-per-trial", self.cpus_per_trial)
        if self.gpus_per_trial is not None and not (
                math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise ValueError(f"gpus-per-trial must be >= 0, got {self.gpus_per_trial!r}")
        self._asked_speedups()  # checked even with gpu_speedups off
        check_study_name(self.study)
        check_storage_url(self.storage_url)
        if self.address is not None and not self.address.strip():
            raise ValueError("address must not be empty")

    def _check_scheduler(self) -> None:
        """Refuse now, before Ray starts, a scheduler that neither device's budget can run
        (the device is known only once Ray has started; then ``_plan`` checks again)."""
        errors = []
        for gpu in (False, True):
            try:
                self.scheduler_spec(gpu=gpu)
            except ValueError as err:
                errors.append(err)
        if len(errors) == 2:
            raise errors[0]

    def scheduler_spec(self, *, gpu: bool) -> SchedulerSpec:
        """The scheduler of the trials' device; ``ValueError`` if it cannot run with the
        budget or ignores flags given for mo-asha."""
        spec = self.resolve_budget(gpu=gpu).scheduler_spec
        if spec.name == "fifo" and (self.min_epochs, self.reduction_factor) != (None, None):
            raise ValueError("--min-epochs and --reduction-factor are for --scheduler mo-asha; "
                             f"this budget's {'GPU' if gpu else 'CPU'} trials use fifo")
        return spec

    @property
    def study(self) -> str:
        """The study name: given, or readable from dataset and budget (``cifar10-standard``)."""
        # "" is checked (and refused) as a name, never taken to mean the default.
        return (f"{dataset_slug(self.dataset)}-{self.budget}" if self.study_name is None
                else self.study_name)

    @property
    def storage_url(self) -> str:
        if self.storage is None:  # "" is a malformed URL, not the default
            return default_storage(self.results_dir, self.study)
        return self.storage

    @property
    def speedups(self) -> Speedups:
        """The training-step speed-ups GPU trials use (none with ``gpu_speedups`` off)."""
        return self._asked_speedups() if self.gpu_speedups else Speedups()

    def _asked_speedups(self) -> Speedups:
        """The speed-ups the flags ask for; ``ValueError`` for a bad one."""
        return Speedups(cuda_graphs=self.cuda_graphs,
                        compile_min_epochs=self.compile_min_epochs, batch_scale=self.batch_scale)

    @property
    def ordered_objectives(self) -> tuple[Objective, ...]:
        """Objectives in the study's column order (:data:`search.study.objectives.OBJECTIVES`)."""
        return objectives_from_names(self.objectives, latency_target=self.latency_target)

    def resolve_budget(self, *, gpu: bool) -> Budget:
        """The named budget for the trials' device, with explicit flags on top."""
        base = BUDGETS[self.budget]["gpu" if gpu else "cpu"]
        return Budget(**{f.name: getattr(base, f.name) if getattr(self, f.name, None) is None
                         else getattr(self, f.name) for f in fields(Budget)})


def check_config(config: SearchConfig) -> None:
    """What ``config`` names on disk, checked before Ray starts
    (:func:`search.driver.tune.run_search` calls it): an image folder's layout, from its
    directory listing (its images are decoded when the search loads them), and for a
    latency objective the latency-table folder, which the trials share: unwritable, each
    trial would measure every block again, in parallel with the others' training."""
    if config.dataset.startswith(FOLDER_PREFIX):
        scan_folder(config.dataset.removeprefix(FOLDER_PREFIX))
    if any(o.target for o in config.ordered_objectives):
        check_table_dir()


def check_budget_fits(budget: Budget, splits: Splits, seed: int) -> Budget:
    """``budget`` with its batch no larger than the images a trial trains on; ``ValueError``
    (one line) for a budget the dataset cannot serve, where every trial would fail or
    learn nothing: no validation image to score on, or fewer training images per trial
    than classes. :func:`search.driver.tune.run_search` calls it when the data is loaded,
    before Ray starts and before the study records the configuration."""
    labels = splits.train[1]
    classes = splits.info.shape.num_classes
    if len(splits.val[1]) == 0:
        raise ValueError(f"--val-fraction {budget.val_fraction:g} leaves no validation image "
                         f"({len(labels):,} training images in {classes} classes, each "
                         "class's share rounds to none); trials are scored on it: raise it")
    # What search.training.loop trains a trial on: the same stratified draw.
    trained = (len(labels) if budget.subset >= 1 else
               len(stratified_split(labels, budget.subset, seed)[1]))
    if trained < classes:
        raise ValueError(f"--subset {budget.subset:g} gives a trial {trained} of the "
                         f"{len(labels):,} training images, fewer than the {classes} "
                         "classes (each class's share rounds down): raise --subset")
    # A batch never holds more than the images a trial trains on (one batch of all of
    # them), so no flag can make a trial allocate for more.
    per_trial = max(1, round(budget.subset * len(labels)))
    return replace(budget, batch_size=min(budget.batch_size, per_trial))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m search.run",
        description="Multi-objective architecture search (validation accuracy vs parameters) "
                    "with Optuna samplers, trials run by Ray Tune, stored in an Optuna study.",
    )
    add = parser.add_argument
    add("--dataset", required=True,
        help=f"one of {', '.join(DATASETS)}, or {FOLDER_PREFIX}PATH for your own images "
             "(PATH/<class>/* or PATH/train/<class>/* with optional test/ and val/)")
    add("--budget", default="standard",
        help=f"named budget: {', '.join(BUDGETS)} (default: %(default)s); see --epochs etc.")
    add("--trials", type=int, help="trials in the study in total, resumed runs included")
    add("--epochs", type=int, help="training epochs per trial")
    add("--subset", type=float, help="fraction of the training split per trial, in (0, 1]")
    add("--batch-size", type=int)
    add("--val-fraction", type=float,
        help="share of the training set held out to score trials, in (0, 1)")
    add("--lr", type=float, help="peak learning rate (default: the training default's)")
    add_data_arguments(parser)
    add("--objectives", default="accuracy,params",
        help=f"accuracy and one or more of {', '.join(list(OBJECTIVES)[1:])} "
             "(default: %(default)s)")
    add("--latency-target", default=DEFAULT_TARGET,
        help=f"with a latency objective, where it is measured: {', '.join(TARGETS)} "
             "(default: %(default)s)")
    add("--sampler", default=DEFAULT_SAMPLER,
        help=f"{', '.join(SAMPLERS)} (default: %(default)s)")
    add("--max-params", type=int,
        help="sampled architectures with more parameters are not trained: recorded PRUNED at "
             "once, not counted in --trials, and the sampler learns to avoid them; the "
             "presets are trained whatever their size (default: no cap)")
    add("--scheduler", help=f"{', '.join(SCHEDULERS)}: every trial trains all its epochs, or "
                            "multi-objective ASHA stops those that rank poorly at a rung "
                            "(default: the budget's)")
    add("--min-epochs", type=int,
        help="mo-asha: the first rung, in epochs; rungs at min-epochs * reduction-factor^k")
    add("--reduction-factor", type=int,
        help="mo-asha: eta, the top 1/eta of a rung go on (default: the budget's, 3)")
    add("--seed", type=int, default=0, help="sampler, data split and training seed")
    add("--presets", default=",".join(DEFAULT_PRESETS),
        help="architectures enqueued as the first trials of a new study "
             "(default: %(default)s)")
    add("--no-presets", action="store_true", help="enqueue no presets")
    add("--study-name", "--study", dest="study_name",
        help="the study (default: <dataset>-<budget>)")
    add("--storage", help="Optuna RDB URL (default: sqlite:///<results-dir>/<study-name>.db)")
    add("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    add("--cpus-per-trial", type=float, default=1.0)
    add("--gpus-per-trial", type=_gpus_per_trial, default=None,
        help="a number (fractions allowed) or auto (default): several trials per GPU, as many "
             "as fit in its memory (search.trials.packing), 0 without GPUs")
    add("--cuda-graphs", action="store_true",
        help="GPU trials: capture each training step as one CUDA graph (unmeasured: off)")
    add("--compile-min-epochs", type=int, default=0,
        help="GPU trials of at least this many epochs use torch.compile (default 0: never)")
    add("--batch-scale", type=int, default=1,
        help="GPU trials: batch size and learning rate times this (default 1)")
    add("--no-gpu-speedups", dest="gpu_speedups", action="store_false",
        help="debugging: no GPU speed-ups and one trial per GPU with --gpus-per-trial auto")
    add("--max-concurrent", type=int, help="default: as many trials as resources allow")
    add("--address", default=os.environ.get("RAY_ADDRESS") or None,
        help="join this Ray cluster (default: $RAY_ADDRESS, else start Ray here)")
    add("--take-over", action="store_true",
        help="run even if another search seems to hold the study: for when you know it is "
             "gone (its host died, its clock is wrong); prints whose lease it took")
    return parser


def _gpus_per_trial(text: str) -> float | None:
    return None if text == "auto" else float(text)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_config(argv: Sequence[str] | None = None) -> SearchConfig:
    """Flags -> :class:`SearchConfig`; ``ValueError`` (one line) for bad values."""
    args = build_parser().parse_args(argv)
    values = {field.name: getattr(args, field.name) for field in fields(SearchConfig)}
    values["objectives"] = _names(args.objectives)
    values["presets"] = () if args.no_presets else _names(args.presets)
    return SearchConfig(**values)
