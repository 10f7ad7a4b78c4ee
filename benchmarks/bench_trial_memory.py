"""Peak resident memory of one search trial, before and after the memory fixes, same run.

Each measurement runs one trial's work (``search.training.evaluate.train_and_score`` on the
search's split of the dataset) in a fresh Python process and reads its peak resident
set size (``VmHWM`` in ``/proc/self/status``), so nothing of an earlier measurement
counts. "before" is the old trial: the 1,024-image evaluation batch and the whole dataset
(test split included) in the trial; "after" is what the search runs now. The estimate the
search declares to Ray for the trial (``search.trials.memory``) is printed next to it, and with
``--device cuda`` torch's peak GPU allocation.

One epoch on ``--subset`` of the training split (the peak comes from the first batches and
from scoring the validation split, 5% of the training set as in the ``quick`` budget)::

    python benchmarks/bench_trial_memory.py                      # 4 cases x before/after, CPU
    python benchmarks/bench_trial_memory.py --cases paper-mix:fashion-mnist --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

CASES = ("paper-mix:fashion-mnist", "mobilenetv2:fashion-mnist", "paper-mix:synthetic",
         "mobilenetv2:synthetic")
OLD_EVAL_BATCH = 1024


def _vm(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(args: argparse.Namespace) -> None:
    import torch

    from search.data import load_dataset
    from search.training import RECIPES
    from search.training.evaluate import train_and_score
    from search.trials.memory import TrialMemory
    from space import preset

    imported = _vm("VmRSS")
    splits = load_dataset(args.dataset, val_fraction=args.val_fraction, seed=0,
                          input_size=args.input_size)
    if args.variant == "after":
        splits = splits.for_trials()
    eval_batch = OLD_EVAL_BATCH if args.variant == "before" else RECIPES["default"].eval_batch_size
    config = replace(RECIPES["default"], epochs=1, subset=args.subset,
                     batch_size=args.batch_size, eval_batch_size=eval_batch,
                     device=args.device)
    arch = preset(args.arch)
    estimate = TrialMemory.for_search(splits, config).estimate(arch)
    evaluation = train_and_score(arch, splits, config)
    gpu_peak = torch.cuda.max_memory_allocated() if config.device.startswith("cuda") else 0
    print(json.dumps({"peak": _vm("VmHWM"), "imported": imported, "estimate": estimate,
                      "gpu_peak": gpu_peak, "val_images": len(splits.val[1]),
                      "accuracy": evaluation.val_accuracy}))


def _measure(case: str, variant: str, args: argparse.Namespace) -> dict:
    arch, dataset = case.split(":")
    command = [sys.executable, __file__, "--child", "--variant", variant, "--arch", arch,
               "--dataset", dataset, "--subset", str(args.subset),
               "--batch-size", str(args.batch_size), "--val-fraction", str(args.val_fraction),
               "--device", args.device]
    if dataset == "synthetic":
        command += ["--input-size", "32"]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="arch:dataset,...")
    parser.add_argument("--subset", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)  # the CPU budgets'
    parser.add_argument("--val-fraction", type=float, default=0.05)  # the quick budget's
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--input-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    print(f"peak resident memory of one trial ({args.device}, batch {args.batch_size}, "
          f"validation {args.val_fraction:g} of the training set)")
    print(f"{'case':28} {'before':>8} {'after':>8} {'declared':>9} {'imports':>8}"
          f" {'GPU before':>11} {'GPU after':>10}")
    for case in args.cases.split(","):
        before, after = (_measure(case, variant, args) for variant in ("before", "after"))
        gb = [f"{figure / 1e9:.2f}" for figure in (
            before["peak"], after["peak"], after["estimate"], after["imported"],
            before["gpu_peak"], after["gpu_peak"])]
        print(f"{case:28} {gb[0]:>8} {gb[1]:>8} {gb[2]:>9} {gb[3]:>8} {gb[4]:>11} {gb[5]:>10}"
              "  GB (GPU: torch's peak allocation; 0 on the CPU)", flush=True)


if __name__ == "__main__":
    main()
