"""Every GPU measurement of issue 12 in one run; ``benchmarks/gpu_check.sh`` starts it.

Sections, each skipped with its reason where it cannot run (no CUDA, no Ray, out of time):

* ``tests``: the CUDA tests (CUDA-graph step vs eager step, the memory cap);
* ``steps``: training images/s of paper-mix and mobilenetv2 at 32 px, batch 128 and 512
  (512 is ``--batch-scale 4``), eager, with CUDA graphs, and compiled (paper-mix, batch 128);
  peak GPU memory of each run. The second epoch is timed: the first pays for cuDNN's
  kernel choice, the capture and the compilation;
* ``dataloader``: the same models and batches through a torchvision DataLoader loop
  (``bench_train.plain_loop``: PIL transforms in worker processes, fp32) on the same GPU;
* ``packing``: summed images/s of 1, 2, 4 and 8 processes training paper-mix (batch 128)
  on one GPU at once, each capped at its share as the search caps trials;
* ``search``: a 16-trial synthetic CIFAR-shaped search with the default packing: wall time,
  sum of the trials' training times over the wall time, each trial's peak GPU memory.

Results go to ``OUT/results.json`` and ``OUT/table.txt``; the table is printed last.
``--smoke`` runs every section tiny (CPU included), so a CPU test keeps the script working::

    python benchmarks/gpu_check.py --out results/gpu-check
    python benchmarks/gpu_check.py --out /tmp/check --smoke
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_train import plain_loop

from cse_nets import build_network
from search.data import Splits, load_dataset, make_synthetic
from search.training import TrainConfig, train_model
from search.training.step import NO_SPEEDUPS, Speedups
from search.trials.packing import fixed_packing, limit_process_memory
from space import preset

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ("paper-mix", "mobilenetv2")
BATCHES = (128, 512)
SHARING = (1, 2, 4, 8)


@dataclass(frozen=True)
class Sizes:
    """How much each section does: the real check, or ``--smoke``."""

    input_size: int  # synthetic CIFAR-shaped images: 32 px
    images: int  # training images per timed run (two epochs are run, the second timed)
    loader_workers: int
    shared_images: int  # per packed process
    search_trials: int
    search_epochs: int
    search_subset: float


FULL = Sizes(input_size=32, images=20_480, loader_workers=8, shared_images=30_720,
             search_trials=16, search_epochs=3, search_subset=1.0)
SMOKE = Sizes(input_size=16, images=16, loader_workers=0, shared_images=16, search_trials=2,
              search_epochs=1, search_subset=0.02)


class Skip(Exception):
    """A section that cannot run here; the message says why."""


def _gpu_bytes() -> int:
    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 1


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device")


def _splits(count: int, input_size: int) -> Splits:
    info = load_dataset("synthetic", val_fraction=0, input_size=input_size).info
    images, labels = make_synthetic(count, input_size=input_size, seed=0)
    empty = (images[:0], labels[:0])
    return Splits(info=info, train=(images, labels), val=empty, test=empty)


def _rate(arch: str, batch: int, count: int, speedups: Speedups,
          input_size: int) -> dict[str, Any]:
    """Images/s of the second of two epochs over ``count`` images, and the peak memory."""
    splits = _splits(max(count, batch), input_size)
    model = build_network(preset(arch), splits.info.shape, seed=0)
    config = TrainConfig(epochs=2, batch_size=batch, device=str(_device()), seed=0)
    result = train_model(model, splits, config, speedups=speedups)
    return {"images_per_s": result.history[-1].images_per_second,
            "peak_gpu_bytes": result.peak_gpu_bytes}


def section_tests(sizes: Sizes, smoke: bool) -> dict[str, Any]:
    _needs_cuda()
    if smoke:
        raise Skip("smoke run")
    tests = ["tests/search/test_step.py", "tests/search/test_packing.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    return {"passed": run.returncode == 0, "summary": run.stdout.strip().splitlines()[-1:]}


def section_steps(sizes: Sizes, smoke: bool) -> dict[str, Any]:
    cuda = _device().type == "cuda"
    variants: dict[str, Speedups] = {"eager": NO_SPEEDUPS}
    if cuda:
        variants["cuda_graphs"] = Speedups(cuda_graphs=True)
    rows = {}
    for arch in ARCHS:
        for batch in BATCHES if not smoke else (8,):
            for name, speedups in variants.items():
                rows[f"{arch} b{batch} {name}"] = _rate(arch, batch, sizes.images, speedups,
                                                        sizes.input_size)
    if cuda and not smoke:  # compilation takes about a minute per architecture and batch
        rows["paper-mix b128 compile"] = _rate("paper-mix", 128, sizes.images,
                                               Speedups(compile_min_epochs=1), sizes.input_size)
    return rows


def section_dataloader(sizes: Sizes, smoke: bool) -> dict[str, Any]:
    device = _device()
    rows = {}
    for arch in ARCHS:
        for batch in BATCHES if not smoke else (8,):
            splits = _splits(max(sizes.images, batch), sizes.input_size)
            config = TrainConfig(batch_size=batch, device=str(device), seed=0)

            def rate(count: int, arch: str = arch, config: TrainConfig = config,
                     splits: Splits = splits) -> float:
                model = build_network(preset(arch), splits.info.shape, seed=0)
                return plain_loop(model, splits.info, *splits.train, config, count,
                                  workers=sizes.loader_workers, channels_last=False)

            rate(config.batch_size)  # warm-up: cuDNN's kernel choice, as in bench_train
            rows[f"{arch} b{batch}"] = {"images_per_s": rate(sizes.images)}
    return rows


def section_packing(sizes: Sizes, smoke: bool) -> dict[str, Any]:
    rows = {}
    for sharing in SHARING if not smoke else (2,):  # 2: the processes' hand-shake
        fraction = fixed_packing(1 / sharing, 1, _gpu_bytes()).memory_fraction
        with tempfile.TemporaryDirectory() as folder:
            go = Path(folder) / "go"
            spec = {"images": sizes.shared_images, "batch": 128 if not smoke else 8,
                    "input_size": sizes.input_size, "fraction": fraction, "go": str(go),
                    "ready": folder}
            workers = [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(
                {**spec, "index": i})], stdout=subprocess.PIPE, text=True, cwd=ROOT)
                for i in range(sharing)]
            _wait_for(lambda f=folder, n=sharing: len(list(Path(f).glob("ready-*"))) == n)
            go.touch()
            outputs = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1])
                       for w in workers]
        rows[f"{sharing} sharing"] = {
            "images_per_s": sum(o["images_per_s"] for o in outputs),
            "peak_gpu_bytes": max((o["peak_gpu_bytes"] or 0) for o in outputs) or None,
        }
    return rows


def _wait_for(done: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("packed workers did not get ready")
        time.sleep(0.2)


def packed_worker(spec: dict[str, Any]) -> None:
    """One of several processes sharing the GPU: warm up, wait for the others, train."""
    limit_process_memory(spec["fraction"])
    size = spec["input_size"]
    _rate("paper-mix", spec["batch"], spec["batch"], NO_SPEEDUPS, size)  # warm-up
    (Path(spec["ready"]) / f"ready-{spec['index']}").touch()
    _wait_for(Path(spec["go"]).exists)
    print(json.dumps(_rate("paper-mix", spec["batch"], spec["images"], NO_SPEEDUPS, size)))


def section_search(sizes: Sizes, smoke: bool) -> dict[str, Any]:
    try:
        import optuna
        from optuna.trial import TrialState

        from search.driver.config import SearchConfig
        from search.driver.tune import run_search
        from search.study.schema import DEVICE, PEAK_GPU_BYTES, TRAIN_SECONDS
    except ImportError as err:
        raise Skip(f"{err.name} is not installed (carry wheels: scripts/gpu_wheels.sh)") from None
    with tempfile.TemporaryDirectory(prefix="gpu-check-search-") as folder:
        # The GPU "smoke" budget (batch 128) with the default packing, on all 1,800
        # synthetic training images for a few epochs, so that trials train for seconds.
        config = SearchConfig(dataset="synthetic", budget="smoke", trials=sizes.search_trials,
                              epochs=sizes.search_epochs, subset=sizes.search_subset,
                              input_size=sizes.input_size, sampler="random",
                              results_dir=Path(folder))
        result = run_search(config, out=io.StringIO())
        study = optuna.load_study(study_name=result.study_name, storage=result.storage_url)
        trials = study.get_trials(states=(TrialState.COMPLETE,))
    train = sum(t.user_attrs[TRAIN_SECONDS] for t in trials)
    return {"trials": len(trials), "wall_s": result.wall_seconds,
            "train_over_wall": train / result.wall_seconds,
            "devices": sorted({t.user_attrs[DEVICE] for t in trials}),
            "peak_gpu_bytes": [t.user_attrs.get(PEAK_GPU_BYTES) for t in trials]}


SECTIONS: dict[str, Callable[[Sizes, bool], dict[str, Any]]] = {
    "tests": section_tests, "steps": section_steps, "dataloader": section_dataloader,
    "packing": section_packing, "search": section_search,
}
# Seconds a section needs on an H200 (estimates); one is skipped if less time is left.
NEEDS_S = {"tests": 60, "steps": 150, "dataloader": 60, "packing": 90, "search": 90}


def _environment() -> dict[str, Any]:
    found = {"torch": torch.__version__, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found.update(gpu=props.name, gpu_memory_bytes=props.total_memory)
    return found


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def format_table(results: dict[str, Any]) -> str:
    """The printed summary: one line per measured row, skipped sections with their reason."""
    env = results["environment"]
    lines = [f"gpu_check on {env.get('gpu', 'CPU (no CUDA)')}, torch {env['torch']}"]
    for name, outcome in results["sections"].items():
        if "skipped" in outcome:
            lines.append(f"{name:<11} skipped: {outcome['skipped']}")
            continue
        section = outcome["result"]
        if name in ("steps", "dataloader", "packing"):
            for row, value in section.items():
                lines.append(f"{name:<11} {row:<32} {value['images_per_s']:>10,.0f} img/s"
                             f"  peak {_gib(value.get('peak_gpu_bytes'))}")
        elif name == "search":
            peaks = [p for p in section["peak_gpu_bytes"] if p]
            lines.append(f"{name:<11} {section['trials']} trials in {section['wall_s']:.1f} s, "
                         f"sum of training / wall {section['train_over_wall']:.2f}, peak per "
                         f"trial {_gib(min(peaks)) if peaks else '-'} to "
                         f"{_gib(max(peaks)) if peaks else '-'}")
        else:
            lines.append(f"{name:<11} {'passed' if section['passed'] else 'FAILED'} "
                         f"{' '.join(section['summary'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu-check")
    parser.add_argument("--smoke", action="store_true", help="every section, tiny")
    parser.add_argument("--budget-s", type=float, default=440, help="skip what would not fit")
    parser.add_argument("--only", help="comma-separated sections (default: all)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        packed_worker(json.loads(args.worker))
        return 0
    deadline = time.monotonic() + args.budget_s
    sizes = SMOKE if args.smoke else FULL
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    results: dict[str, Any] = {"environment": _environment(), "sections": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        started = time.monotonic()
        if torch.cuda.is_available():  # cached blocks of the last section would crowd this one
            torch.cuda.empty_cache()
        try:
            if not args.smoke and deadline - started < NEEDS_S[name]:
                raise Skip(f"out of time ({deadline - started:.0f} s left, needs "
                           f"~{NEEDS_S[name]} s)")
            outcome = {"result": SECTIONS[name](sizes, args.smoke)}
        except Skip as reason:
            outcome = {"skipped": str(reason)}
        outcome["seconds"] = round(time.monotonic() - started, 1)
        results["sections"][name] = outcome
        print(f"{name}: done in {outcome['seconds']} s", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = format_table(results)
    (args.out / "table.txt").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
