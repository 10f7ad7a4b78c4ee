"""Write Fashion-MNIST (the Debian package's idx files) as PNG files in the image-folder
layout, to check that ``--dataset folder:PATH`` matches ``--dataset fashion-mnist``:

    python scripts/fashion_mnist_to_folder.py /tmp/fmnist-png
    python -m search.run --dataset folder:/tmp/fmnist-png --budget quick

Layout: ``train/<k>_<name>/<index>.png`` and ``test/...``; the ``<k>_`` prefix keeps the
sorted class folders in Fashion-MNIST's label order.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from cse_nets.cli import OneLineParser, exits_on_bad_input
from search.data import DEBIAN_FASHION_MNIST, read_idx

CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle-boot")


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=DEBIAN_FASHION_MNIST)
    args = parser.parse_args(argv)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(args.source / f"{prefix}-images-idx3-ubyte.gz", 3).numpy()
        labels = read_idx(args.source / f"{prefix}-labels-idx1-ubyte.gz", 1).tolist()
        for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            folder = args.out / split / f"{label}_{CLASSES[label]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "L").save(folder / f"{index:05d}.png")
        print(f"{split}: {len(labels)} images in {args.out / split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
