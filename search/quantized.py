"""``model.int8.onnx`` for ``python -m search.export --int8``: an export's ``model.onnx``
statically quantised (:func:`cse_nets.latency.quantize.quantize_onnx`), then tested and
timed beside it.

Calibration: :data:`CALIBRATION_IMAGES` images drawn (seeded) from the study's training
split, normalised with the statistics ``model.json`` records, the input an application
feeds. Test: both ONNX files run through onnxruntime on the same test split, so the
accuracy change is int8's alone; how often the two agree on the class is recorded too.
Latency: the same protocol as ``model.onnx``'s figure (:func:`cse_nets.latency.measure_onnx`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch

from cse_nets.latency.quantize import QUANTIZER, float_ops, quantize_onnx
from cse_nets.load import INT8_ONNX_FILE
from search.data import Splits

__all__ = ["CALIBRATION_BATCH", "CALIBRATION_IMAGES", "calibration_batches", "onnx_predictions",
           "write_int8"]

CALIBRATION_IMAGES = 256  # a few hundred: MinMax keeps only each tensor's range, not a histogram
CALIBRATION_BATCH = 32
EVAL_BATCH = 500  # test images per onnxruntime call

Normalizer = Callable[[torch.Tensor], torch.Tensor]  # uint8 images -> model input


def _inputs(images: torch.Tensor, normalize: Normalizer) -> np.ndarray:
    return normalize(images).contiguous().numpy()  # NCHW float32, as the ONNX input


def calibration_batches(splits: Splits, normalize: Normalizer, *, seed: int,
                        count: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """``count`` training images (all of them if fewer), seeded, normalised, in batches."""
    images = splits.train[0]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    chosen = images[order[:count]]
    return [_inputs(chosen[i:i + CALIBRATION_BATCH], normalize)
            for i in range(0, len(chosen), CALIBRATION_BATCH)]


def onnx_predictions(path: Path, images: torch.Tensor, normalize: Normalizer) -> np.ndarray:
    """The class onnxruntime's run of the model at ``path`` gives each of ``images``."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: _inputs(images[i:i + EVAL_BATCH],
                                                              normalize)})[0].argmax(axis=1)
                           for i in range(0, len(images), EVAL_BATCH)])


def write_int8(directory: Path, fp32_file: Path, splits: Splits, normalize: Normalizer, *,
               seed: int, measure: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Quantise ``fp32_file`` into ``directory / model.int8.onnx``; return its metrics
    (``measure`` times a model file, as the fp32 figure is timed)."""
    batches = calibration_batches(splits, normalize, seed=seed)
    path = directory / INT8_ONNX_FILE
    path.write_bytes(quantize_onnx(fp32_file.read_bytes(), batches))
    images, labels = splits.test
    truth = labels.numpy()
    fp32, int8 = (onnx_predictions(p, images, normalize) for p in (fp32_file, path))
    return {
        "file": INT8_ONNX_FILE,
        "size_kb": path.stat().st_size / 1024,
        "calibration_images": sum(len(batch) for batch in batches),
        "test_accuracy": float((int8 == truth).mean()),
        "fp32_onnx_test_accuracy": float((fp32 == truth).mean()),
        "agreement_with_fp32": float((int8 == fp32).mean()),
        "float_ops": float_ops(path),
        "latency": measure(path),
        "quantizer": f"onnxruntime {onnxruntime.__version__} {QUANTIZER}",
    }
