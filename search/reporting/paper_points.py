"""The paper's reported results, to draw next to a search's front.

Park & Kim, "Further Optimize MobileNetV2 with Channel-wise Squeeze and Excitation",
results table (restated in English in ``design/paper-notes.md``). Their accuracy is the
best *test* accuracy seen during 200 epochs of training, picked on the test set; a search
here selects on a validation split, so the two are related but not the same measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_POINTS", "PaperPoint", "paper_points"]


@dataclass(frozen=True)
class PaperPoint:
    dataset: str  # where the paper measured it
    model: str  # the paper's name for it
    label: str  # a few characters for a figure
    params: int  # trainable parameters, from the paper's figure in millions
    accuracy: float  # fraction in [0, 1]
    preset: str | None  # our preset of the same layout, if there is one


def _point(dataset: str, model: str, label: str, params_m: float, accuracy_pct: float,
           preset: str | None = None) -> PaperPoint:
    return PaperPoint(dataset, model, label, round(params_m * 1e6), accuracy_pct / 100, preset)


_BASELINE = ("MobileNetV2 baseline", "paper: MNv2")
_MIX = ("mix (3 BTN & 4 CSE)", "paper: mix")
_CSE_ONLY = ("CSE block only, cap 8", "paper: CSE only")

# dataset: (model, label, params in M, accuracy in %, our preset)
PAPER_POINTS: dict[str, tuple[PaperPoint, ...]] = {
    "cifar10": (
        _point("cifar10", *_BASELINE, 2.253, 91.74, "mobilenetv2"),
        _point("cifar10", "MobileNetV2 optimized for CIFAR-10", "paper: MNv2-opt", 0.425, 90.01),
        _point("cifar10", *_CSE_ONLY, 0.228, 88.13, "cse-only"),
        _point("cifar10", *_MIX, 0.363, 90.03, "paper-mix"),
    ),
    "cifar100": (
        _point("cifar100", *_BASELINE, 2.253, 70.4, "mobilenetv2"),
        _point("cifar100", "MobileNetV2 optimized for CIFAR-100", "paper: MNv2-opt", 0.541, 63.74),
        _point("cifar100", *_MIX, 0.478, 63.34, "paper-mix"),
    ),
    "imagenette": (
        _point("imagenette", *_BASELINE, 2.253, 91.56, "mobilenetv2"),
        _point("imagenette", *_CSE_ONLY, 0.453, 85.554, "cse-only"),
        _point("imagenette", *_MIX, 0.444, 91.31, "paper-mix"),
    ),
}


def paper_points(dataset: str) -> tuple[PaperPoint, ...]:
    """The paper's points for ``dataset``; for a dataset it did not train on, its CIFAR-10
    points (each says where it was measured), so a front still has the paper's sizes and
    accuracies to be read against."""
    return PAPER_POINTS.get(dataset, PAPER_POINTS["cifar10"])
