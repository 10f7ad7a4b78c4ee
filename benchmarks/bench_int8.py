"""fp32 against int8 for trained networks: test accuracy, file size, measured latency.

Each argument is an export directory with trained weights (``python -m search.train ...
--save DIR`` or ``python -m search.export ... --retrain-epochs E``). For each, the network
is written as ONNX as ``search.export`` writes it, quantised as ``search.export --int8``
does (:mod:`search.quantized`: calibrated on training images, normalised as its
``model.json`` says), and both files are run through onnxruntime on the dataset's test
split and timed with the latency protocol (batch 1, one thread). With ``--predict`` the
latency the table and its correction predict on ``cpu-onnxruntime`` and
``cpu-onnxruntime-int8`` is printed beside the measurements (fitted on first use: minutes).

    python -m search.train --arch paper-mix --dataset fashion-mnist --epochs 1 \\
        --subset 0.1 --save results/int8/paper-mix
    python benchmarks/bench_int8.py results/int8/paper-mix results/int8/mobilenetv2 --predict
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from cse_nets import count_parameters
from cse_nets.latency import INT8_TARGET, measure_onnx, predict_corrected
from cse_nets.latency.measure import ONNX_TARGET
from cse_nets.load import MODEL_FILE, ONNX_FILE, load_model, read_export
from search.data import load_dataset
from search.data.augment import Normalize
from search.export import ONNX_CHECK_IMAGES, export_onnx
from search.quantized import write_int8


def compare(directory: Path, out: Path, data_dir: Path | None, predict: bool) -> dict:
    arch, shape = read_export(directory)
    model = load_model(directory)
    described = json.loads((directory / MODEL_FILE).read_text())
    stats = described.get("normalization")
    if not stats or "dataset" not in described:
        raise ValueError(f"{directory}: model.json has no dataset and normalisation")
    splits = load_dataset(described["dataset"], data_dir=data_dir, seed=0,
                          input_size=shape.input_size)
    normalize = Normalize(tuple(stats["mean"]), tuple(stats["std"]), torch.device("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    fp32_file = out / ONNX_FILE
    export_onnx(model, normalize(splits.test[0][:ONNX_CHECK_IMAGES]), fp32_file)

    def latency(path: Path) -> dict[str, float]:
        timing = measure_onnx(path, (1, *shape.chw))
        return {"measured_ms": timing.median_s * 1e3, "spread_ms": timing.spread_s * 1e3}

    int8 = write_int8(out, fp32_file, splits, normalize, seed=0, measure=latency)
    fp32_ms = latency(fp32_file)["measured_ms"]
    row = {"network": directory.name, "params": count_parameters(model),
           "fp32 acc": int8["fp32_onnx_test_accuracy"], "int8 acc": int8["test_accuracy"],
           "agree": int8["agreement_with_fp32"],
           "fp32 KB": fp32_file.stat().st_size / 1024, "int8 KB": int8["size_kb"],
           "fp32 ms": fp32_ms, "int8 ms": int8["latency"]["measured_ms"],
           "float ops": ", ".join(f"{op} x{n}" for op, n in int8["float_ops"].items()) or "-"}
    row["int8 speed-up"] = row["fp32 ms"] / row["int8 ms"]
    if predict:
        for target, label in ((ONNX_TARGET, "fp32"), (INT8_TARGET, "int8")):
            row[f"{label} predicted ms"] = predict_corrected(arch, shape, target).total_s * 1e3
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", type=Path, nargs="+", help="export directories")
    parser.add_argument("--data-dir", type=Path, help="data root (default: the cache's)")
    parser.add_argument("--out", type=Path, help="keep the ONNX files here (default: a "
                                                 "temporary folder)")
    parser.add_argument("--predict", action="store_true",
                        help="also print the corrected table predictions for both targets")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for directory in args.exports:
            try:
                rows.append(compare(directory, root / directory.name, args.data_dir,
                                    args.predict))
            except (ValueError, OSError) as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    frame = pd.DataFrame(rows)
    print()
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
