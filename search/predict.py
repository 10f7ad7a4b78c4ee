"""python -m search.predict: run an exported model.onnx on image files, print each class.

    python -m search.predict results/my-study/export/7-bbbcccc-210k photo.jpg other.png
    python -m search.predict --int8 results/my-study/export/7-bbbcccc-210k photo.jpg

``--int8`` runs ``model.int8.onnx`` (``search.export --int8``) instead; it takes the same
float input, so the preparation is the same.

Each image is prepared exactly as training saw it: converted to the export's channels
(grey or RGB; 16-bit and float greyscale scaled to 8 bits), its shorter side resized to
the input size and the centre cropped, then normalised with the statistics in
``model.json``. Only onnxruntime, Pillow and numpy are needed to do the same in an
application; this command is that code, tested.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from PIL import Image

from cse_nets.cli import OneLineParser, exits_on_bad_input, first_line
from cse_nets.load import INT8_ONNX_FILE, MODEL_FILE, ONNX_FILE, read_export
from search.data import fit_square
from search.data.images import to_8bit
from space import InputShape
from space.jsonfile import open_file, read_json_file

__all__ = ["main", "predict"]


def _prepare(path: Path, channels: int, size: int, mean: np.ndarray,
             std: np.ndarray) -> np.ndarray:
    with open_file(path, "image") as file:
        try:
            with Image.open(file) as image:
                pixels = fit_square(to_8bit(image, "L" if channels == 1 else "RGB"), size)
        # Pillow's refusal of a huge image is not an OSError; a PixelRangeError is a
        # ValueError.
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot read image {path}: {first_line(err)}") from None
    return ((pixels.numpy().astype(np.float32) / 255.0 - mean) / std)[None]


def _statistic(path: Path, stats: dict[str, Any], key: str, channels: int) -> np.ndarray:
    """``stats[key]`` as ``(channels, 1, 1)`` finite floats (std: above 0), else
    ``ValueError`` naming ``path``."""
    try:
        values = np.asarray(stats.get(key), dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    low = 0 if key == "std" else -np.inf  # a std of 0 would divide by zero
    if values.shape != (channels,) or not (np.isfinite(values) & (values > low)).all():
        above = " above 0" if key == "std" else ""
        raise ValueError(f"{path}: normalization {key} must be {channels} finite number(s)"
                         f"{above}, got {stats.get(key)!r}")
    return values.reshape(-1, 1, 1)


def _session(path: Path, shape: InputShape, model_path: Path) -> onnxruntime.InferenceSession:
    """``path`` loaded in onnxruntime, checked to take the input ``model_path`` describes."""
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's errors are their own types, not OSError
        raise ValueError(f"cannot load {path}: {first_line(err)}") from None
    dims = session.get_inputs()[0].shape[1:]  # past the dynamic batch dimension
    if len(dims) != 3 or any(isinstance(d, int) and d != e
                             for d, e in zip(dims, shape.chw, strict=True)):
        raise ValueError(f"{path} takes {'x'.join(map(str, dims))} images, but {model_path} "
                         f"says {'x'.join(map(str, shape.chw))}")
    return session


def predict(export_dir: Path, images: Sequence[Path], *,
            int8: bool = False) -> list[tuple[str, float]]:
    """Per image: the predicted class (its name where the export has names) and its
    softmax probability, from ``model.onnx`` or (``int8``) ``model.int8.onnx``."""
    _, shape = read_export(export_dir)
    model_path = export_dir / MODEL_FILE
    model = read_json_file(model_path, "export file")  # read_export checked: an object
    stats = model.get("normalization")
    onnx_file = INT8_ONNX_FILE if int8 else ONNX_FILE
    if not (export_dir / onnx_file).is_file() or not stats:
        raise ValueError(f"{export_dir} has no {onnx_file} with its normalisation "
                         f"(export with --retrain-epochs{' --int8' if int8 else ''})")
    if not isinstance(stats, dict):
        raise ValueError(f"{model_path}: normalization must be an object with mean and std, "
                         f"got {stats!r}")
    names = model.get("class_names") or [str(i) for i in range(shape.num_classes)]
    mean, std = (_statistic(model_path, stats, key, shape.in_channels)
                 for key in ("mean", "std"))
    session = _session(export_dir / onnx_file, shape, model_path)
    batch = np.concatenate([_prepare(p, shape.in_channels, shape.input_size, mean, std)
                            for p in images])
    (logits,) = session.run(None, {session.get_inputs()[0].name: batch})
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return [(names[int(row.argmax())], float(row.max())) for row in probabilities]


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.predict", description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="an export directory with model.onnx")
    parser.add_argument("images", type=Path, nargs="+", help="image files")
    parser.add_argument("--int8", action="store_true",
                        help=f"run {INT8_ONNX_FILE} (search.export --int8) instead")
    args = parser.parse_args(argv)
    for path, (name, probability) in zip(args.images,
                                         predict(args.export, args.images, int8=args.int8),
                                         strict=True):
        print(f"{path}: {name} ({probability:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
