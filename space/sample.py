"""The searchable space: an Optuna trial (or a plain params dict) -> :class:`Arch`.

The encoding has a fixed length: every trial samples every field of all seven stages
(``stage<i>.op``, ``.t``, ``.c``, ``.n``, ``.s``, ``.r``, ``.cap``) plus ``stem``,
``head_ratio``, ``head_op`` and ``act``, and the decoder ignores what a block does not use
(``t`` for CSE, ``r``/``cap`` for BTN). NSGA-II only learns from parameters present in
every trial, so a conditional space would leave it sampling at random; with this one NSGA-II,
TPE and random sampling all see the same 53 parameters.

Every choice list contains the values of the ``mobilenetv2`` and ``paper-mix`` presets, so
both are points of the space (:func:`preset_params`). Strides are the only constrained
field: a sampled stride 2 becomes 1 once another halving would shrink the feature map below
:data:`MIN_FEATURE_SIZE`, so every decoded architecture fits the input it was sampled for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from space.arch import ACTIVATIONS, HEAD_OPS, OPS, Arch, Stage, block_output_size
from space.checks import positive_int

__all__ = [
    "CHOICES",
    "MIN_FEATURE_SIZE",
    "STAGE_FIELDS",
    "UNUSED_FIELDS",
    "arch_from_params",
    "check_params",
    "decoded_stage",
    "preset_params",
    "sample_arch",
]

# Smallest side length a stride may produce: CSE attention over a 1x1 map is a scalar gate
# and a grouped head would see one number per channel.
MIN_FEATURE_SIZE = 2
MIN_HALVINGS = 3

# Output-channel choices per stage; the middle value is MobileNetV2's (and paper-mix's).
WIDTHS = (
    (8, 16, 24),
    (16, 24, 32),
    (24, 32, 48),
    (48, 64, 96),
    (64, 96, 128),
    (128, 160, 256),
    (160, 320, 480),
)
STAGE_FIELDS = ("op", "t", "c", "n", "s", "r", "cap")
# Sampled for every stage, read by one op only: BTN has no attention, CSE no expansion.
UNUSED_FIELDS = {"btn": ("r", "cap"), "cse": ("t",)}


def _stage_choices(index: int, widths: tuple[int, ...]) -> dict[str, tuple[Any, ...]]:
    return {
        f"stage{index}.op": OPS,
        f"stage{index}.t": (1, 3, 6),  # expansion ratio (BTN)
        f"stage{index}.c": widths,  # output channels
        f"stage{index}.n": (1, 2, 3, 4),  # blocks in the stage
        f"stage{index}.s": (1, 2),  # stride of the first block
        f"stage{index}.r": (8, 16, 32),  # attention reduction ratio (CSE)
        f"stage{index}.cap": (4, 8, 16),  # attention hidden-width cap (CSE)
    }


# Parameter name -> choices, in sampling order. The head width is a multiple of the last
# stage's channels, so a grouped head (one group per channel) is always valid.
CHOICES: dict[str, tuple[Any, ...]] = {
    **{
        name: values
        for index, widths in enumerate(WIDTHS)
        for name, values in _stage_choices(index, widths).items()
    },
    "stem": (16, 24, 32),  # stem output channels
    "head_ratio": (2, 3, 4),  # head channels / last stage's channels
    "head_op": HEAD_OPS,
    "act": ACTIVATIONS,  # stem and head activation
}


class SuggestsCategorical(Protocol):
    """The part of ``optuna.Trial`` the sampler uses (keeps optuna out of ``space``)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def sample_arch(trial: SuggestsCategorical, input_size: int) -> Arch:
    """Define-by-run: suggest every parameter of :data:`CHOICES`, decode for ``input_size``."""
    params = {name: trial.suggest_categorical(name, choices) for name, choices in CHOICES.items()}
    return arch_from_params(params, input_size)


def check_params(params: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first of ``params`` that is no field of the space or none of
    its choices. Some fields may be missing: a trial enqueued with a few (Optuna's
    ``enqueue_trial``) samples the rest."""
    unknown = sorted(set(params) - set(CHOICES))
    if unknown:
        raise ValueError(f"params: {', '.join(map(repr, unknown))} not in the space")
    for name, value in params.items():
        if value not in CHOICES[name]:
            raise ValueError(f"params: {name} must be one of {CHOICES[name]}, got {value!r}")


def arch_from_params(params: Mapping[str, Any], input_size: int) -> Arch:
    """Decode a full parameter dict; strides that would over-shrink the input become 1."""
    missing = sorted(set(CHOICES) - set(params))
    if missing:
        raise ValueError(f"params: missing {', '.join(missing)}")
    check_params({name: params[name] for name in CHOICES})  # others are not read
    positive_int(input_size, "input_size")
    size = input_size
    halvings = 0
    stages = []
    for index in range(len(WIDTHS)):
        row = {field: params[f"stage{index}.{field}"] for field in STAGE_FIELDS}
        stage = decoded_stage(index, row, size, halvings)
        halvings += stage.s == 2
        size = block_output_size(stage.op, stage.s, size)
        stages.append(stage)
    last = stages[-1].c
    return Arch(
        stages=tuple(stages),
        stem=params["stem"],
        head=params["head_ratio"] * last,
        head_op=params["head_op"],
        act=params["act"],
    )


def decoded_stage(index: int, row: Mapping[str, Any], size: int, halvings: int) -> Stage:
    """Stage ``index`` from its sampled fields (``STAGE_FIELDS``) on a ``size`` input after
    ``halvings`` stride-2 stages: the stride forced to 2 while the stages left must still
    make :data:`MIN_HALVINGS`, and to 1 where 2 would shrink below :data:`MIN_FEATURE_SIZE`."""
    stride = row["s"]
    if index >= len(WIDTHS) - (MIN_HALVINGS - halvings):
        stride = 2
    if stride == 2 and block_output_size(row["op"], 2, size) < MIN_FEATURE_SIZE:
        stride = 1
    # Unused fields keep Stage's defaults so equal networks compare (and print) equal.
    unused = UNUSED_FIELDS[row["op"]]
    return Stage(**{k: v for k, v in {**row, "s": stride}.items() if k not in unused})


def preset_params(arch: Arch, input_size: int) -> dict[str, Any]:
    """The params that decode to ``arch`` at ``input_size`` (for ``study.enqueue_trial``).

    ``ValueError`` if ``arch`` is not a point of the space for that input size.
    """
    if len(arch.stages) != len(WIDTHS):
        raise ValueError(f"arch has {len(arch.stages)} stages; the space has {len(WIDTHS)}")
    last = arch.stages[-1].c
    if arch.head % last:
        raise ValueError(f"arch: head ({arch.head}) is not a multiple of the last width ({last})")
    params: dict[str, Any] = {
        f"stage{index}.{field}": getattr(stage, field)
        for index, stage in enumerate(arch.stages)
        for field in STAGE_FIELDS
    }
    params.update(stem=arch.stem, head_ratio=arch.head // last, head_op=arch.head_op,
                  act=arch.act)
    decoded = arch_from_params(params, input_size)
    if decoded != arch:
        raise ValueError(
            f"arch is not in the space for a {input_size}x{input_size} input: it decodes "
            f"to {decoded}"
        )
    return params
