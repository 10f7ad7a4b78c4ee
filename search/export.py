"""python -m search.export: the front's architectures as files, optionally retrained.

    python -m search.export --study-name cifar10-tpe [--top K] [--retrain-epochs E]

For every architecture on the front (or the ``K`` with the largest hypervolume
contribution) it writes ``<results-dir>/<study>/export/<trial>-<ops>-<params>k/`` with
``arch.json``, ``model.json`` (the input and classes it is built for; see
:mod:`cse_nets.load`) and ``summary.txt`` (the per-stage cost table). With
``--retrain-epochs`` it also trains the architecture from scratch on training +
validation data with the study's recipe and writes ``weights.pt``, ``model.onnx`` (batch
dimension dynamic; checked in onnxruntime against PyTorch) and ``metrics.json`` with the
**test** accuracy, which also goes back into the study for ``search.report``. With
``--int8`` it writes ``model.int8.onnx`` beside ``model.onnx``, statically quantised and
calibrated on training images, with its test accuracy, size, latency and the ops that stay
in float in ``metrics.json`` (:mod:`search.quantized`).

Each export folder is filled beside its place and renamed into it once every file is
written, so it holds the earlier export or the whole new one. An image folder changed
since the search is refused before anything (:mod:`search.data.source`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import torch
from torch import nn

from cse_nets import build_network, count_macs, count_parameters
from cse_nets.cli import OneLineParser, exits_on_bad_input, positive_int_arg
from cse_nets.latency import (
    Correction,
    LatencyTable,
    correction_for,
    measure_onnx,
    predict_corrected,
)
from cse_nets.latency.measure import ONNX_TARGET
from cse_nets.latency.quantize import check_quantizer
from cse_nets.load import ONNX_FILE, save_weights, write_export
from cse_nets.summary import format_profile
from search.cli import add_study_arguments, open_study_from_args, storage_url_from_args
from search.data import Splits, load_dataset
from search.data.arguments import add_data_dir_argument
from search.data.augment import Normalize
from search.data.source import check_unchanged, folder_now
from search.quantized import write_int8
from search.study.objectives import ACCURACY, MACS, PARAMS
from search.study.results import StudyInfo, StudyResults, load_results
from search.study.schema import (
    ARCH,
    DATASET,
    DEVICE,
    EXPORT_DIR,
    TEST_ACCURACY,
    TRAIN_CONFIG,
    TRAIN_SECONDS,
    VERSIONS,
    export_attr,
)
from search.study.storage import StudyError, output_dir, sqlite_read_only, writing_to_storage
from search.training import (
    EpochStats,
    NonFiniteLossError,
    TrainConfig,
    final_test_accuracy,
    resolve_device,
    train_model,
    versions,
)
from space import Arch
from space.files import write_folder_atomically

__all__ = ["ONNX_CHECK_IMAGES", "choose", "default_jobs", "export_name", "export_onnx", "main",
           "retrain_config"]

METRICS_FILE, SUMMARY_FILE = "metrics.json", "summary.txt"
ONNX_CHECK_IMAGES = 64  # test images run through both PyTorch and onnxruntime
PR_SET_PDEATHSIG = 1  # prctl(2)


def choose(results: StudyResults, top: int | None) -> pd.DataFrame:
    """Front trials, one per distinct network, largest hypervolume contribution first; the
    first ``top`` of them when given."""
    front = results.distinct_networks(results.front.sort_values(
        ["hv_contribution", ACCURACY.metric, "number"], ascending=[False, False, True]))
    return front if top is None else front.head(top)


def export_name(number: int, arch: Arch, params: int) -> str:
    """``<trial>-<one letter per stage: b(tn) or c(se)>-<params in thousands>k``."""
    ops = "".join(op[0] for op in arch.ops)
    return f"{number}-{ops}-{round(params / 1000)}k"


def retrain_config(info: StudyInfo, epochs: int, device: str | None) -> TrainConfig:
    """The study's training recipe for ``epochs`` on the whole (merged) training set."""
    try:
        config = TrainConfig(**info.train_config)
    except TypeError as err:
        raise StudyError(f"study {info.name!r}: its train_config does not fit this "
                         f"version's TrainConfig ({err})") from None
    # Resolved once, here: an unusable device fails before any data is loaded.
    # A search's rung restarts (anneal_at) are for scoring at rungs; a retrain is one run.
    return replace(config, epochs=epochs, subset=1.0, anneal_at=(),
                   device=str(resolve_device(device or config.device)))


def _load_splits(info: StudyInfo, data_dir: Path | None, seed: int) -> Splits:
    splits = load_dataset(info.dataset, data_dir=data_dir, seed=seed,
                          input_size=info.shape.input_size)
    got = (splits.info.shape.in_channels, splits.info.shape.num_classes)
    if got != (info.shape.in_channels, info.shape.num_classes):
        raise StudyError(f"dataset {info.dataset} now gives {got[0]} channels and {got[1]} "
                         f"classes; the study was run with {info.shape.in_channels} and "
                         f"{info.shape.num_classes}")
    return splits


@dataclass(frozen=True)
class _Retraining:
    config: TrainConfig
    splits: Splits
    # model.onnx's latency correction, fitted (or read) once before any retrain: parallel
    # retrains would each fit their own on a machine without one, measuring 24 networks
    # while the others train
    latency_correction: Correction
    int8: bool = False  # also write model.int8.onnx
    progress_bar: bool = True  # off where several retrain at once: their bars would mix


def _write_specs(directory: Path, number: int, arch: Arch, info: StudyInfo,
                 retraining: _Retraining | None = None) -> None:
    """``arch.json``, ``model.json`` and ``summary.txt``: what every export has."""
    extra: dict[str, Any] = {"dataset": info.dataset, "study": info.name, "trial": number,
                             "class_names": info.class_names}
    if retraining is not None:
        extra["normalization"] = retraining.splits.info.normalization()
    write_export(directory, arch, info.shape, extra)
    (directory / SUMMARY_FILE).write_text(format_profile(arch, info.shape) + "\n")


def export_onnx(model: nn.Module, images: torch.Tensor, path: Path) -> float:
    """Write ``model`` as ONNX with a dynamic batch dimension; return the largest absolute
    difference between onnxruntime's and PyTorch's logits on ``images``."""
    model = model.cpu().eval()
    images = images.contiguous()
    batch = torch.export.Dim("batch")
    torch.onnx.export(model, (images,), path, dynamo=True, external_data=False,
                      input_names=["images"], output_names=["logits"],
                      dynamic_shapes=({0: batch},), verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(images).numpy()
    (got,) = session.run(None, {"images": images.numpy()})
    return float(np.abs(got - expected).max())


def _measured(onnx_file: Path, info: StudyInfo) -> dict[str, Any]:
    """An exported ONNX file's measured latency, batch 1, on onnxruntime's CPU settings."""
    measured = measure_onnx(onnx_file, (1, *info.shape.chw))
    return {"batch": 1, "measured_ms": measured.median_s * 1e3,
            "spread_ms": measured.spread_s * 1e3, "runs": measured.runs}


def _latency(onnx_file: Path, arch: Arch, info: StudyInfo,
             correction: Correction) -> dict[str, Any]:
    """The exported model's measured latency, next to what the table and ``correction``
    predict (for model.onnx's runtime)."""
    predicted = predict_corrected(arch, info.shape, ONNX_TARGET, correction=correction)
    return {"target": ONNX_TARGET, **_measured(onnx_file, info),
            "predicted_ms": predicted.total_s * 1e3,
            "predicted_blocks_ms": predicted.blocks.total_s * 1e3}


def _retrain(directory: Path, row: pd.Series, arch: Arch, info: StudyInfo,
             retraining: _Retraining) -> dict[str, Any]:
    """Train, test, write weights, ONNX and ``metrics.json``; return the metrics."""
    config, splits = retraining.config, retraining.splits
    number = int(row["number"])
    model = build_network(arch, info.shape, seed=config.seed)

    def progress(stats: EpochStats) -> None:
        print(f"  trial {number}: epoch {stats.epoch}/{config.epochs}  train loss "
              f"{stats.train_loss:.4f}  {stats.images_per_second:.0f} img/s", flush=True)

    merged = splits.merged()
    print(f"trial {number}: retraining on {len(merged.train[1]):,} images for "
          f"{config.epochs} epoch(s) on {config.device}", flush=True)
    result = train_model(model, merged, config, on_epoch=progress,
                         progress=retraining.progress_bar)
    accuracy = final_test_accuracy(model, splits, config)
    model = model.cpu()
    save_weights(model, directory)
    images = splits.test[0][:ONNX_CHECK_IMAGES]
    normalize = Normalize(splits.info.mean, splits.info.std, torch.device("cpu"))
    max_diff = export_onnx(model, normalize(images), directory / ONNX_FILE)
    metrics = {
        "trial": number,
        ARCH: str(arch),
        DATASET: info.dataset,
        TEST_ACCURACY: accuracy,
        "test_images": len(splits.test[1]),
        "search_val_accuracy": float(row[ACCURACY.metric]),
        PARAMS.metric: count_parameters(model),
        MACS.metric: count_macs(model, info.shape.chw),
        "retrain": {"train_images": len(merged.train[1]), TRAIN_CONFIG: asdict(config),
                    TRAIN_SECONDS: result.train_seconds, DEVICE: result.device,
                    "final_train_loss": result.history[-1].train_loss},
        "onnx": {"file": ONNX_FILE, "check_images": len(images),
                 "max_abs_diff": max_diff, "runtime": f"onnxruntime {onnxruntime.__version__}",
                 "size_kb": (directory / ONNX_FILE).stat().st_size / 1024},
        "latency": _latency(directory / ONNX_FILE, arch, info, retraining.latency_correction),
        VERSIONS: versions(),
    }
    if retraining.int8:
        metrics["int8"] = write_int8(directory, directory / ONNX_FILE, splits, normalize,
                                     seed=config.seed,
                                     measure=lambda path: _measured(path, info))
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _export_retrained(directory: Path, row: pd.Series, arch: Arch, info: StudyInfo,
                      retraining: _Retraining) -> dict[str, Any]:
    """The whole retrained export of ``row``'s trial in ``directory``, which changes only
    once every file is written: a failure on the way (training, ONNX, the latency
    measurement) leaves an earlier export of it as it was."""
    metrics: dict[str, Any] = {}

    def write(folder: Path) -> None:
        _write_specs(folder, int(row["number"]), arch, info, retraining)
        metrics.update(_retrain(folder, row, arch, info, retraining))

    write_folder_atomically(directory, write)
    return metrics


@dataclass(frozen=True)
class _Job:
    """One front member to retrain and export."""

    number: int
    directory: Path
    row: pd.Series
    arch: Arch


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs(retrains: int, device: str) -> int:
    """Retrains to run at once: one per core on the CPU (up to one per network), one on a
    GPU. A small network trains a batch of 16x16 images in many small ops that two threads
    speed up only ~1.45x, so two one-thread retrains side by side finish sooner than two
    two-thread ones in turn (README, "Measured")."""
    return 1 if device.startswith("cuda") else max(1, min(_cores(), retrains))


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    # The export decides when to stop: it gets Ctrl-C and ends its workers with SIGTERM,
    # on which a worker raises, so the folder it was filling is removed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with contextlib.suppress(OSError, AttributeError):
        # Linux: die with the export (kill -9 included) rather than train on, orphaned.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


_Outcome = tuple[_Job, dict[str, Any] | Exception, float]


def _timed_export(job: _Job, info: StudyInfo, retraining: _Retraining) -> _Outcome:
    """``job``'s retrained export: its metrics, or the error it ended in, and its seconds."""
    started = time.perf_counter()
    try:
        metrics = _export_retrained(job.directory, job.row, job.arch, info, retraining)
    except Exception as err:  # the caller's to raise or report
        return job, err, time.perf_counter() - started
    return job, metrics, time.perf_counter() - started


def _timed_export_of(work: tuple[_Job, StudyInfo, _Retraining]) -> _Outcome:
    return _timed_export(*work)


def _retrained(jobs: list[_Job], info: StudyInfo, retraining: _Retraining,
               workers: int) -> Iterator[_Outcome]:
    """``(job, metrics or the error it ended in, seconds)`` as each retrain ends. With
    ``workers`` > 1 they run in that many processes, the cores shared out among them."""
    if workers <= 1:
        for job in jobs:
            yield _timed_export(job, info, retraining)
        return
    quiet = replace(retraining, progress_bar=False)
    # An export does not use the objectives, whose measuring functions do not pickle.
    info = replace(info, objectives=())
    # spawn: a forked child would inherit this process's torch threads and open storage.
    pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker,
                                                     (max(1, _cores() // workers),))
    # Dearest first, so the cheap ones fill the other workers: in the order chosen, 3
    # retrains on 2 workers left the dearest running alone at the end (README,
    # "Measured"). By multiply-accumulates: over make search's 32 trials, training time
    # ranks with them at Spearman 0.84, with parameters at 0.55.
    by_cost = sorted(jobs, key=lambda job: -float(job.row[MACS.metric]))
    try:
        yield from pool.imap_unordered(_timed_export_of,
                                       [(job, info, quiet) for job in by_cost])
        pool.close()  # the workers exit on their own
    except BaseException:  # Ctrl-C, or an error here: end them now (SIGTERM)
        pool.terminate()
        raise
    finally:
        pool.join()


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.export", description=__doc__.splitlines()[0])
    add_study_arguments(parser)
    parser.add_argument("--top", type=positive_int_arg,
                        help="only the K front architectures with the largest hypervolume "
                             "contribution")
    parser.add_argument("--retrain-epochs", type=positive_int_arg,
                        help="retrain each on train + validation for this many epochs, "
                             "test it, write weights and ONNX")
    parser.add_argument("--device", help="device for retraining (default: the study's)")
    parser.add_argument("--int8", action="store_true",
                        help="with --retrain-epochs, also write model.int8.onnx (static int8 "
                             "quantisation calibrated on training images), tested and timed")
    parser.add_argument("--jobs", type=positive_int_arg,
                        help="retrains at once (default: one per CPU core, up to one per "
                             "network; 1 on a GPU)")
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)

    study = open_study_from_args(args)
    if args.retrain_epochs and sqlite_read_only(storage_url_from_args(args)):
        # Refused now, not after hours of retraining.
        raise StudyError("the study's database is read-only, and --retrain-epochs saves each "
                         "test accuracy into it; export without it, or copy the database")
    results = load_results(study)
    info = results.info
    # Before any work: a changed folder carves another test split (search.data.source).
    check_unchanged(info.data_source, folder_now(info.dataset), info.name)
    chosen = choose(results, args.top)
    root = output_dir(args.results_dir, args.study, "export")  # before any slow work
    retraining = None
    if args.int8 and not args.retrain_epochs:
        raise ValueError("--int8 quantises the retrained model: give --retrain-epochs too")
    if args.jobs and not args.retrain_epochs:
        raise ValueError("--jobs is the number of retrains at once: give --retrain-epochs too")
    if args.int8:
        check_quantizer()  # before any slow work
    if args.retrain_epochs:
        config = retrain_config(info, args.retrain_epochs, args.device)
        splits = _load_splits(info, args.data_dir, config.seed)
        correction = correction_for(LatencyTable(ONNX_TARGET), info.shape,
                                    progress=lambda line: print(line, flush=True))
        retraining = _Retraining(config, splits, correction, int8=args.int8)
    jobs = []
    for _, row in chosen.iterrows():
        number = int(row["number"])
        arch = results.archs.get(number)
        if arch is None:
            raise StudyError(f"trial {number} on the front has no readable arch attribute")
        jobs.append(_Job(number, root / export_name(number, arch, int(row[PARAMS.metric])),
                         row, arch))
    if retraining is None:
        for job in jobs:
            if (job.directory / METRICS_FILE).exists():  # its specs would drop the weights
                print(f"trial {job.number}: {job.directory} (kept: a retrained export)")
            else:
                write_folder_atomically(job.directory, partial(
                    _write_specs, number=job.number, arch=job.arch, info=info))
                print(f"trial {job.number}: {job.directory}")
        return 0
    workers = args.jobs or default_jobs(len(jobs), retraining.config.device)
    if workers > 1:
        print(f"retraining {len(jobs)} networks, {min(workers, len(jobs))} at once", flush=True)
    failed = 0
    error: Exception | None = None
    for job, outcome, seconds in _retrained(jobs, info, retraining, workers):
        if isinstance(outcome, NonFiniteLossError):
            failed += 1
            print(f"warning: trial {job.number} not retrained: {outcome}", file=sys.stderr)
            continue
        if isinstance(outcome, Exception):  # raised once every other retrain is recorded
            error = error or outcome
            continue
        with writing_to_storage(f"trial {job.number}'s test accuracy"):
            study.set_user_attr(export_attr(job.number),
                                {TEST_ACCURACY: outcome[TEST_ACCURACY],
                                 EXPORT_DIR: str(job.directory)})
        int8 = (f"  int8 test acc {outcome['int8']['test_accuracy']:.2%}"
                if "int8" in outcome else "")
        print(f"trial {job.number}: {job.directory}  test acc {outcome[TEST_ACCURACY]:.2%}  "
              f"onnx max |diff| {outcome['onnx']['max_abs_diff']:.1e}{int8}  "
              f"({seconds:.0f} s)", flush=True)
    if error is not None:
        raise error
    print(f"test accuracies saved in study {info.name!r}; "
          f"python -m search.report --study-name {info.name} draws them")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
