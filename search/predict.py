"""python -m search.predict: run an exported model.onnx on image files, print each class.

    python -m search.predict results/my-study/export/7-bbbcccc-210k photo.jpg other.png

Each image is prepared exactly as training saw it: converted to the export's channels
(grey or RGB; 16-bit and float greyscale scaled to 8 bits), its shorter side resized to
the input size and the centre cropped, then normalised with the statistics in
``model.json``. Only onnxruntime, Pillow and numpy are needed to do the same in an
application; this command is that code, tested.
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
from cse_nets.load import MODEL_FILE, ONNX_FILE, read_export
from search.data import fit_square
from search.data.images import to_8bit

__all__ = ["main", "predict"]


def _prepare(path: Path, channels: int, size: int, mean: np.ndarray,
             std: np.ndarray) -> np.ndarray:
    try:
        with Image.open(path) as image:
            pixels = fit_square(to_8bit(image, "L" if channels == 1 else "RGB"), size)
    except (OSError, UnidentifiedImageError, ValueError) as err:  # ValueError: its range
        raise ValueError(f"cannot read image {path}: {err}") from None
    return ((pixels.numpy().astype(np.float32) / 255.0 - mean) / std)[None]


def predict(export_dir: Path, images: Sequence[Path]) -> list[tuple[str, float]]:
    """Per image: the predicted class (its name where the export has names) and its
    softmax probability."""
    _, shape = read_export(export_dir)
    model = json.loads((export_dir / MODEL_FILE).read_text())
    stats = model.get("normalization")
    if not (export_dir / ONNX_FILE).is_file() or not stats:
        raise ValueError(f"{export_dir} has no {ONNX_FILE} with its normalisation "
                         "(export with --retrain-epochs)")
    names = model.get("class_names") or [str(i) for i in range(shape.num_classes)]
    mean = np.asarray(stats["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(stats["std"], dtype=np.float32).reshape(-1, 1, 1)
    session = onnxruntime.InferenceSession(str(export_dir / ONNX_FILE),
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
    args = parser.parse_args(argv)
    for path, (name, probability) in zip(args.images, predict(args.export, args.images),
                                         strict=True):
        print(f"{path}: {name} ({probability:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
