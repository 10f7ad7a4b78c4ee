"""What an architecture is: a validated, JSON-serialisable value with no torch in sight.

An :class:`Arch` is a stem, a table of :class:`Stage` rows (MobileNetV2's ``t, c, n, s``
plus the block type and the CSE block's ``r`` and ``cap``) and a head. The string form,
used as a readable key in logs and tables, is defined here once::

    stem32 btn_t1_c16_n1_s1 btn_t6_c24_n2_s1 cse_c64_n4_s2_r16_cap8 head1280g_prelu

* ``stem<W>``: 3x3 stem convolution to ``W`` channels.
* ``btn_t<t>_c<c>_n<n>_s<s>``: ``n`` inverted-residual (1x1 bottleneck) blocks with
  expansion ``t`` and ``c`` output channels; the first has stride ``s``.
* ``cse_c<c>_n<n>_s<s>_r<r>_cap<cap>``: ``n`` CSE blocks; spatial attention hidden width
  ``min(cap, H*W // r)``. ``t`` is not used by CSE blocks and is not shown.
* ``head<W>[g]_<act>``: 1x1 convolution to ``W`` channels (``g``: grouped, one group per
  input channel) followed by ``act``; the stem uses the same activation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from space.checks import positive_int
from space.jsonfile import parse_json

__all__ = [
    "ACTIVATIONS",
    "FORMAT_VERSION",
    "HEAD_OPS",
    "OPS",
    "Arch",
    "Block",
    "Stage",
    "attention_width",
    "block_output_size",
    "blocks",
    "lookup",
    "network_key",
    "stage_blocks",
    "stage_resolutions",
]

FORMAT_VERSION = 1
T = TypeVar("T")
OPS = ("btn", "cse")
HEAD_OPS = ("dense", "grouped")
ACTIVATIONS = ("relu6", "prelu")


def _check_positive_ints(owner: str, values: dict[str, Any]) -> None:
    for name, value in values.items():
        positive_int(value, f"{owner}: {name}")


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class Stage:
    """One row of the config table: ``n`` blocks of type ``op`` with ``c`` output channels."""

    op: str
    c: int
    n: int
    s: int
    t: int = 1  # expansion ratio; BTN only
    r: int = 16  # attention reduction ratio; CSE only
    cap: int = 8  # upper bound on the attention's hidden width; CSE only

    def __post_init__(self) -> None:
        _check_choice("stage", "op", self.op, OPS)
        _check_positive_ints("stage", {"c": self.c, "n": self.n, "s": self.s, "t": self.t,
                                       "r": self.r, "cap": self.cap})
        if self.s not in (1, 2):
            raise ValueError(f"stage: s (stride) must be 1 or 2, got {self.s!r}")

    def __str__(self) -> str:
        if self.op == "btn":
            return f"btn_t{self.t}_c{self.c}_n{self.n}_s{self.s}"
        return f"cse_c{self.c}_n{self.n}_s{self.s}_r{self.r}_cap{self.cap}"


@dataclass(frozen=True)
class Arch:
    """A whole network: stem width, stages and head, in the order data flows through them."""

    stages: tuple[Stage, ...]
    stem: int = 32
    head: int = 1280
    head_op: str = "dense"
    act: str = "relu6"

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple) or not self.stages:
            raise ValueError(f"arch: stages must be a non-empty tuple, got {self.stages!r}")
        for stage in self.stages:
            if not isinstance(stage, Stage):
                raise ValueError(f"arch: every stage must be a Stage, got {stage!r}")
        _check_positive_ints("arch", {"stem": self.stem, "head": self.head})
        _check_choice("arch", "head_op", self.head_op, HEAD_OPS)
        _check_choice("arch", "act", self.act, ACTIVATIONS)
        last = self.stages[-1].c
        if self.head_op == "grouped" and self.head % last:
            raise ValueError(
                f"arch: a grouped head needs head ({self.head}) to be a multiple of the last "
                f"stage's channels ({last})"
            )

    def __str__(self) -> str:
        head = f"head{self.head}{'g' if self.head_op == 'grouped' else ''}_{self.act}"
        return " ".join([f"stem{self.stem}", *map(str, self.stages), head])

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(stage.op for stage in self.stages)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [asdict(stage) for stage in self.stages]
        return {"format": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        if not isinstance(data, dict):
            raise ValueError(f"arch: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format", None)
        if type(version) is not int or version != FORMAT_VERSION:  # true == 1 in Python
            raise ValueError(f"arch: format must be {FORMAT_VERSION}, got {version!r}")
        _reject_unknown_keys("arch", data, {f.name for f in fields(cls)})
        if "stages" not in data or not isinstance(data["stages"], list):
            raise ValueError("arch: stages must be a list of stage objects")
        stage_keys = {f.name for f in fields(Stage)}
        stages = []
        for i, row in enumerate(data["stages"]):
            if not isinstance(row, dict):
                raise ValueError(f"arch: stage {i} must be an object, got {row!r}")
            _reject_unknown_keys(f"stage {i}", row, stage_keys)
            missing = {"op", "c", "n", "s"} - row.keys()
            if missing:
                raise ValueError(f"stage {i}: missing {', '.join(sorted(missing))}")
            stages.append(Stage(**row))
        return cls(**{**data, "stages": tuple(stages)})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        return cls.from_dict(parse_json(text, "arch"))

    def check_input_size(self, input_size: int) -> None:
        """Raise ``ValueError`` if the strides would shrink ``input_size`` below one pixel."""
        stage_resolutions(self, input_size)


def lookup(table: dict[str, T], name: str, kind: str) -> T:
    """``table[name]``, or a ``ValueError`` that lists the valid names of this ``kind``."""
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {', '.join(table)}") from None


def _reject_unknown_keys(owner: str, data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {', '.join(map(repr, unknown))}")


def attention_width(pixels: int, *, r: int, cap: int) -> int:
    """Hidden width of the CSE attention MLP for a ``pixels``-long squeezed map."""
    return max(1, min(cap, pixels // r))


def block_output_size(op: str, stride: int, size: int) -> int:
    """Side length after one block: BTN's 3x3 conv pads by 1, CSE's 2x2 stride-2 does not."""
    if stride == 1:
        return size
    return (size + 1) // 2 if op == "btn" else size // 2


@dataclass(frozen=True, slots=True)
class Block:
    """One block of an architecture on one input size, as every consumer builds or counts it.

    The network builder, the size estimate, the profile and the latency table all read
    these values from :func:`blocks`, so the stride and resolution rules live there only.
    """

    stage_index: int  # 0-based position of its stage in ``arch.stages``
    index_in_stage: int  # 0-based; only the first block of a stage takes its stride
    stage: Stage
    c_in: int
    stride: int
    input_size: int  # side length of its input feature map
    output_size: int

    @property
    def op(self) -> str:
        return self.stage.op

    @property
    def c_out(self) -> int:
        return self.stage.c

    @property
    def last_in_stage(self) -> bool:
        return self.index_in_stage == self.stage.n - 1


def blocks(arch: Arch, input_size: int) -> Iterator[Block]:
    """Every block of ``arch`` on an ``input_size`` square input, in forward order.

    The stem keeps the size and the stem's width is the first block's ``c_in``. A stage's
    first block has the stage's stride, the others stride 1. ``ValueError`` (when the
    iteration reaches it) for a block that would shrink its input below one pixel.
    """
    positive_int(input_size, "input_size")
    size, c_in = input_size, arch.stem
    for stage_index, stage in enumerate(arch.stages):
        for block in stage_blocks(stage_index, stage, c_in, size):
            if block.output_size < 1:
                raise ValueError(
                    f"arch does not fit a {input_size}x{input_size} input: stage "
                    f"{stage_index} ({stage}) would shrink {block.input_size}x"
                    f"{block.input_size} below one pixel"
                )
            yield block
        size, c_in = block.output_size, stage.c


def stage_blocks(stage_index: int, stage: Stage, c_in: int, size: int) -> Iterator[Block]:
    """The blocks of one stage fed ``c_in`` channels of ``size`` x ``size``, unchecked."""
    for i in range(stage.n):
        stride = stage.s if i == 0 else 1
        out = block_output_size(stage.op, stride, size)
        yield Block(stage_index, i, stage, c_in, stride, size, out)
        size, c_in = out, stage.c


def stage_resolutions(arch: Arch, input_size: int) -> list[list[int]]:
    """Per stage, the input side length of each of its blocks (the stem keeps the size)."""
    table: list[list[int]] = [[] for _ in arch.stages]
    for block in blocks(arch, input_size):
        table[block.stage_index].append(block.input_size)
    return table


def network_key(arch: Arch, input_size: int) -> tuple[Arch, tuple[int, ...]]:
    """A hashable key of the network ``arch`` builds on an ``input_size`` square input:
    equal keys, equal networks (same modules and shapes; the weights follow the seed).

    Two kinds of field do not reach the network: those a block ignores (``t`` of a CSE
    stage; ``r`` and ``cap`` of a BTN one), and a CSE stage's ``r`` and ``cap`` beyond the
    attention widths they give at its blocks' resolutions; at 2x2 or 4x4 many pairs give
    the same widths. So the key is ``arch`` with those fields set to 1, and the widths.
    """
    widths = tuple(attention_width(block.input_size ** 2, r=block.stage.r, cap=block.stage.cap)
                   for block in blocks(arch, input_size) if block.op == "cse")
    plain = tuple(replace(stage, r=1, cap=1) if stage.op == "btn"
                  else replace(stage, t=1, r=1, cap=1) for stage in arch.stages)
    return replace(arch, stages=plain), widths
