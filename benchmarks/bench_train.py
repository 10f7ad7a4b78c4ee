"""Our training loop against a plain DataLoader loop, timed in the same run.

Both train the same model (paper-mix by default, same initial weights) with SGD (same
momentum, weight decay, label smoothing; the plain loop keeps the lr constant), the same
batch size and number of images, drawn from the same synthetic 32x32x3 uint8 images:

* ours: ``search.training.train_model``, images on the device as uint8 tensors, batched
  crop/flip/normalise there, channels_last, ``--precision`` ("auto": bf16 on CUDA, fp32
  on the CPU);
* plain: a torchvision ``DataLoader`` with PIL transforms (``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``) in ``--workers`` processes,
  fp32, NCHW unless ``--plain-channels-last``.

Each loop first runs one untimed batch, so neither pays for the other's warm-up (oneDNN
and cuDNN cache their kernels by shape); then each is timed from start to end, the
plain loop's worker start included, as a trial would pay it. ``--plain-channels-last``
(and, on CUDA, ``--precision fp32``) leaves the data pipeline as the only difference.
On a 2-core CPU paper-mix trains at only 30-50 img/s, so the default 1536 images take
about a minute per loop::

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --samples 768 --plain-channels-last
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cse_nets import build_network
from search.data import DatasetInfo, Splits, load_dataset, make_synthetic
from search.training import (
    PRECISIONS,
    RECIPES,
    TrainConfig,
    resolve_device,
    resolve_precision,
    train_model,
)
from space import PRESETS, preset


class _PILImages(Dataset):
    """uint8 NCHW tensors served one PIL image at a time, as torchvision's CIFAR10 does."""

    def __init__(self, images: Tensor, labels: Tensor, transform: transforms.Compose) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()  # NHWC for PIL
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ours(model: nn.Module, splits: Splits, config: TrainConfig, count: int) -> float:
    """Images per second of ``train_model`` on the first ``count`` training images."""
    images, labels = splits.train
    subset = replace(splits, train=(images[:count], labels[:count]))
    started = time.perf_counter()
    train_model(model, subset, config)  # ends with a wait for the device
    return count // config.batch_size * config.batch_size / (time.perf_counter() - started)


def plain_loop(model: nn.Module, info: DatasetInfo, images: Tensor, labels: Tensor,
           config: TrainConfig, count: int, *, workers: int, channels_last: bool) -> float:
    """Images per second of a textbook DataLoader loop over ``count`` images."""
    device = torch.device(config.device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format).train()
    transform = transforms.Compose([
        transforms.RandomCrop(info.shape.input_size, padding=info.augment.pad),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(info.mean, info.std),
    ])
    loader = DataLoader(
        _PILImages(images, labels, transform), batch_size=config.batch_size, shuffle=True,
        num_workers=workers, drop_last=True, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    steps = count // config.batch_size
    started = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == steps:
            break
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        loss = F.cross_entropy(model(x), y.to(device, non_blocking=True),
                               label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * config.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="paper-mix", choices=tuple(PRESETS))
    parser.add_argument("--images", type=int, default=4096, help="synthetic images in the pool")
    parser.add_argument("--samples", type=int, default=1536,
                        help="images each loop trains on (rounded down to full batches)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="ours only")
    parser.add_argument("--plain-channels-last", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.batch_size <= args.samples <= args.images:
        parser.error("need 0 < --batch-size <= --samples <= --images")

    device = resolve_device(args.device)
    config = replace(RECIPES["default"], batch_size=args.batch_size, seed=args.seed,
                     device=str(device), precision=args.precision, epochs=1)
    # The synthetic dataset's description (shape, normalisation, augmentation), our images.
    info = load_dataset("synthetic", val_fraction=0).info
    images, labels = make_synthetic(args.images, input_size=info.shape.input_size, seed=args.seed)
    empty = (images[:0], labels[:0])
    splits = Splits(info=info, train=(images, labels), val=empty, test=empty)

    def model() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            return build_network(preset(args.arch), info.shape)

    def plain(count: int) -> float:
        return plain_loop(model(), info, images, labels, config, count, workers=args.workers,
                      channels_last=args.plain_channels_last)

    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"{args.arch}, {args.images} synthetic {'x'.join(map(str, info.shape.chw))} images,"
          f" batch {args.batch_size}, {args.samples} images per loop, "
          f"{device}{threads}", flush=True)
    _ours(model(), splits, config, args.batch_size)  # warm-up: one batch each
    plain(args.batch_size)
    ours_rate = _ours(model(), splits, config, args.samples)
    print(f"ours:  {ours_rate:8.1f} img/s  (device tensors, batched augmentation, "
          f"channels_last, {resolve_precision(args.precision, device)})", flush=True)
    plain_rate = plain(args.samples)
    layout = "channels_last" if args.plain_channels_last else "NCHW"
    print(f"plain: {plain_rate:8.1f} img/s  (DataLoader, PIL transforms, {args.workers} "
          f"workers, fp32, {layout})")
    print(f"ratio ours/plain: {ours_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
