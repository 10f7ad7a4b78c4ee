"""python -m search.predict: run an exported model.onnx on image files, print each class.

    python -m search.predict results/my-study/export/7-bbbcccc-210k photo.jpg other.png
    python -m search.predict --int8 results/my-study/export/7-bbbcccc-210k photo.jpg

``--int8`` runs ``model.int8.onnx`` (``search.export --int8``) instead; it takes the same
float input, so the preparation is the same.

Each image is prepared exactly as training saw it: converted to the export's channels
(grey or RGB), its shorter side resized to the input size and the centre cropped, then
normalised with the statistics in ``model.json``. Only onnxruntime, Pillow and numpy are
needed to do the same in an application; this command is that code, tested.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image, UnidentifiedImageError

from cse_nets.cli import OneLineParser, exits_on_bad_input
from cse_nets.load import INT8_ONNX_FILE, MODEL_FILE, ONNX_FILE, read_export
from search.data import fit_square

__all__ = ["main", "predict"]


def _prepare(path: Path, channels: int, size: int, mean: np.ndarray,
             std: np.ndarray) -> np.ndarray:
    try:
        with Image.open(path) as image:
            pixels = fit_square(image.convert("L" if channels == 1 else "RGB"), size)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return ((pixels.numpy().astype(np.float32) / 255.0 - mean) / std)[None]


def predict(export_dir: Path, images: Sequence[Path], *,
            int8: bool = False) -> list[tuple[str, float]]:
    """Per image: the predicted class (its name where the export has names) and its
    softmax probability, from ``model.onnx`` or (``int8``) ``model.int8.onnx``."""
    _, shape = read_export(export_dir)
    model = json.loads((export_dir / MODEL_FILE).read_text())
    stats = model.get("normalization")
    onnx_file = INT8_ONNX_FILE if int8 else ONNX_FILE
    if not (export_dir / onnx_file).is_file() or not stats:
        raise ValueError(f"{export_dir} has no {onnx_file} with its normalisation "
                         f"(export with --retrain-epochs{' --int8' if int8 else ''})")
    names = model.get("class_names") or [str(i) for i in range(shape.num_classes)]
    mean = np.asarray(stats["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(stats["std"], dtype=np.float32).reshape(-1, 1, 1)
    session = onnxruntime.InferenceSession(str(export_dir / onnx_file),
                                           providers=["CPUExecutionProvider"])
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
