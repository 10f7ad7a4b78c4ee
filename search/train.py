"""python -m search.train: train one architecture, report validation and test accuracy,
and optionally save an export directory. Bad input prints one ``error: ...`` line and exits 2::

    python -m search.train --arch paper-mix --dataset fashion-mnist --epochs 1
    python -m search.train --arch my_arch.json --dataset cifar10 --recipe paper --save out/
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from cse_nets import build_network, count_parameters
from cse_nets.cli import OneLineParser, exits_on_bad_input, positive_int_arg
from cse_nets.load import save_weights, write_export
from search.data import DATASETS, FOLDER_PREFIX, load_dataset
from search.data.arguments import add_data_arguments
from search.data.folder import TEST_FRACTION
from search.study.objectives import ACCURACY, PARAMS
from search.study.schema import (
    ARCH,
    DATASET,
    DEVICE,
    INPUT_SHAPE,
    NUM_CLASSES,
    SEED,
    TEST_ACCURACY,
    TRAIN_CONFIG,
    TRAIN_SECONDS,
    VAL_FRACTION,
    VERSIONS,
)
from search.training import (
    PRECISIONS,
    RECIPES,
    EpochStats,
    NonFiniteLossError,
    TrainConfig,
    final_test_accuracy,
    resolve_device,
    resolve_precision,
    train_model,
    versions,
)
from space import PRESETS, load_arch

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m search.train",
                           description="Train one architecture and report validation and "
                                       "test accuracy.")
    add = parser.add_argument
    add("--arch", required=True, help=f"a preset ({', '.join(PRESETS)}) or an architecture "
                                      "JSON file")
    add("--dataset", required=True,
        help=f"one of {', '.join(DATASETS)}, or {FOLDER_PREFIX}PATH for your own images")
    add("--recipe", choices=tuple(RECIPES), default="default",
        help="training recipe; the flags below override its fields")
    add("--epochs", type=positive_int_arg)
    add("--batch-size", type=positive_int_arg)
    add("--lr", type=float, help="peak learning rate")
    add("--subset", type=float, help="fraction of the training split, in (0, 1]")
    add("--seed", type=int, help="split, subset, shuffling, init (default 0)")
    add("--device", help="auto (default), cpu, cuda or cuda:N")
    add("--precision", choices=PRECISIONS, help="auto (default): bf16 on CUDA, fp32 on the CPU")
    add("--val-fraction", type=float, default=0.1,
        help="share of the training set held out for validation")
    add_data_arguments(parser)
    add("--save", type=Path, metavar="DIR",
        help="write an export directory here: arch.json, model.json, weights.pt, metrics.json")
    return parser


def _config(args: argparse.Namespace) -> TrainConfig:
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "subset": args.subset, "seed": args.seed, "device": args.device,
             "precision": args.precision}
    return replace(RECIPES[args.recipe], **{k: v for k, v in flags.items() if v is not None})


def _print_epoch(epochs: int) -> Callable[[EpochStats], None]:
    def report(stats: EpochStats) -> None:
        val = "-" if stats.val_accuracy is None else f"{stats.val_accuracy:.2%}"
        tqdm.write(f"epoch {stats.epoch}/{epochs}  train loss {stats.train_loss:.4f}  "
                   f"val acc {val}  {stats.images_per_second:.1f} img/s  "
                   f"({stats.seconds:.1f} s)")
    return report


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    arch = load_arch(args.arch)
    config = _config(args)
    device = resolve_device(config.device)
    splits = load_dataset(args.dataset, data_dir=args.data_dir, val_fraction=args.val_fraction,
                          seed=config.seed, input_size=args.input_size,
                          strict_images=args.strict_images)
    info = splits.info
    if not len(splits.test[1]):  # refused now: the test accuracy comes after all training
        raise ValueError(f"{info.name}: the test split is empty (without a test/ folder, "
                         f"{TEST_FRACTION:.0%} of each class, rounded, is kept for testing); "
                         "add images, or a test/ folder")
    model = build_network(arch, info.shape, seed=config.seed)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)  # fail now, not after training
    print(f"{arch}\n{count_parameters(model):,} parameters; {info.name} "
          f"{'x'.join(map(str, info.shape.chw))}, train {len(splits.train[1])}, val "
          f"{len(splits.val[1])}, test {len(splits.test[1])}; {device}, "
          f"{resolve_precision(config.precision, device)}")
    try:
        result = train_model(model, splits, config, on_epoch=_print_epoch(config.epochs),
                             progress=True)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    accuracy = final_test_accuracy(model, splits, config)
    print(f"test acc {accuracy:.2%}  ({result.train_seconds:.1f} s training)")
    if args.save is not None:
        # Named as a study names the same things (search.study.schema).
        metrics = {
            ARCH: str(arch), DATASET: info.name, INPUT_SHAPE: list(info.shape.chw),
            NUM_CLASSES: info.shape.num_classes, PARAMS.metric: count_parameters(model),
            TRAIN_CONFIG: asdict(config), VAL_FRACTION: args.val_fraction,
            "history": [asdict(s) for s in result.history],
            ACCURACY.metric: result.val_accuracy, "best_val_accuracy": result.best_val_accuracy,
            TEST_ACCURACY: accuracy, TRAIN_SECONDS: result.train_seconds,
            DEVICE: result.device, "precision": resolve_precision(config.precision, device),
            SEED: config.seed, VERSIONS: versions(),
        }
        write_export(args.save, arch, info.shape, {"dataset": info.name,
                                                   "class_names": info.class_names,
                                                   "normalization": info.normalization()})
        save_weights(model, args.save)
        (args.save / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
