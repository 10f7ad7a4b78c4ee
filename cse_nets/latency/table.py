"""A per-target table of block latencies, built on demand and cached on disk, and the
network latency it predicts.

A network is enumerated into :class:`Entry` values: the stem, every block, and the head
(1x1 conv, BN, activation, pool and classifier together). An entry is the block's full
configuration, so equal keys mean equal modules: ``op, c_in, c_out, t, input size,
stride, r, cap`` for blocks (the field an op ignores is zeroed: ``t`` for CSE, ``r`` and
``cap`` for BTN, so two architectures that differ only there share an entry), plus the
activation, head op and classes for the stem and head. Each entry's module comes from the
same builders ``build_network`` uses (:mod:`cse_nets.network`).

Prediction: timing a block alone counts the per-call overhead of the runtime (onnxruntime's
``run``, Python, binding input and output) once per block, a network pays it once. The
table therefore also measures a ``call`` entry (a trivial model on the network's input)
and predicts ``sum(entry - call) + call``.

One table per target and batch size, keyed on disk by everything a measurement depends
on besides the model (target, torch/onnxruntime versions, CPU or GPU model:
:func:`cse_nets.latency.measure.target_fingerprint`), one JSON file in
:func:`default_table_dir`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cse_nets.latency.measure import DEFAULT_TARGET, measure_module, target_fingerprint
from cse_nets.latency.timing import Protocol, Timing
from cse_nets.network import build_block, build_head, build_stem
from space import Arch, Block, InputShape, Stage, blocks
from space.files import cache_root, write_text_atomically

__all__ = [
    "TABLE_FORMAT",
    "Entry",
    "LatencyTable",
    "OpComparison",
    "PredictedPart",
    "Prediction",
    "block_entry",
    "check_table_dir",
    "compare_ops",
    "default_table_dir",
    "network_entries",
    "predict_latency",
    "table_for",
]

# Bump when what an entry's number means changes (protocol, clock, export path, probe
# model): old files then stop matching and are rebuilt instead of mixed with new numbers.
TABLE_FORMAT = 3

Measurer = Callable[["Entry"], Timing]


def default_table_dir() -> Path:
    """``latency`` in the project's cache folder (:func:`space.files.cache_root`)."""
    return cache_root() / "latency"


@dataclass(frozen=True)
class Entry:
    """One row of the table: a module configuration and the input side length it gets.

    ``kind`` is ``stem``, ``btn``, ``cse``, ``head`` or ``call`` (the overhead probe).
    """

    kind: str
    c_in: int
    c_out: int
    size: int  # input side length in pixels
    stride: int = 1
    t: int = 0  # BTN expansion
    r: int = 0  # CSE attention reduction ratio
    cap: int = 0  # CSE attention width cap
    act: str = ""  # stem and head activation
    head_op: str = ""  # dense or grouped
    classes: int = 0  # head: classifier outputs

    @property
    def key(self) -> str:
        """The entry's string form, used as its key in the JSON file."""
        if self.kind == "btn":
            return f"btn_t{self.t}_c{self.c_in}-{self.c_out}_{self.size}px_s{self.stride}"
        if self.kind == "cse":
            return (f"cse_c{self.c_in}-{self.c_out}_{self.size}px_s{self.stride}"
                    f"_r{self.r}_cap{self.cap}")
        if self.kind == "stem":
            return f"stem_c{self.c_in}-{self.c_out}_{self.size}px_{self.act}"
        if self.kind == "head":
            grouped = "g" if self.head_op == "grouped" else ""
            return (f"head_c{self.c_in}-{self.c_out}{grouped}_{self.size}px_{self.act}"
                    f"_k{self.classes}")
        return f"call_c{self.c_in}_{self.size}px"

    @property
    def input_chw(self) -> tuple[int, int, int]:
        return (self.c_in, self.size, self.size)

    def module(self) -> nn.Module:
        """The module this entry times, built as ``build_network`` builds it."""
        if self.kind in ("btn", "cse"):
            return build_block(self.kind, c_in=self.c_in, c_out=self.c_out, stride=self.stride,
                               size=self.size, t=self.t, r=self.r, cap=self.cap)
        if self.kind == "stem":
            return build_stem(self.c_in, self.c_out, act=self.act)
        if self.kind == "head":
            # CSENet.forward's tail: head, pool, flatten, classifier.
            return nn.Sequential(build_head(self.c_in, self.c_out, head_op=self.head_op,
                                            act=self.act),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                                 nn.Linear(self.c_out, self.classes))
        return _CallProbe()


class _CallProbe(nn.Module):
    """The cheapest model a runtime cannot optimise away: one elementwise op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


def block_entry(block: Block, stage: Stage | None = None) -> Entry:
    """The entry of ``block``: as its own stage builds it, or as ``stage`` (the block's stage
    with the other op) would at the same place. The fields the op ignores are zeroed."""
    stage = block.stage if stage is None else stage
    if stage.op == "btn":
        return Entry("btn", block.c_in, stage.c, block.input_size, stride=block.stride,
                     t=stage.t)
    return Entry("cse", block.c_in, stage.c, block.input_size, stride=block.stride, r=stage.r,
                 cap=stage.cap)


def network_entries(arch: Arch, shape: InputShape) -> list[tuple[str, Entry]]:
    """``(part, entry)`` for the stem, every block and the head, in forward order; ``part``
    is ``stem``, ``stage1``...``stageN`` or ``head`` (the names of ``cse_nets.profile``)."""
    parts = [("stem", Entry("stem", shape.in_channels, arch.stem, shape.input_size,
                            act=arch.act))]
    size = shape.input_size
    for block in blocks(arch, shape.input_size):
        parts.append((f"stage{block.stage_index + 1}", block_entry(block)))
        size = block.output_size
    parts.append(("head", Entry("head", arch.stages[-1].c, arch.head, size, act=arch.act,
                                head_op=arch.head_op, classes=shape.num_classes)))
    return parts


def check_table_dir(directory: str | Path | None = None) -> None:
    """``ValueError`` (one line) unless a latency table can be written in ``directory``
    (default :func:`default_table_dir`): for a search, whose parallel trials share their
    measurements through it, where :meth:`LatencyTable.save` would only warn."""
    directory = Path(directory) if directory is not None else default_table_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise ValueError(f"latency tables cannot be written in {directory} "
                         f"({err.strerror or err}); a search's trials share their block "
                         "measurements there: point XDG_CACHE_HOME to a writable folder"
                         ) from None


def _call_entry(shape: InputShape) -> Entry:
    return Entry("call", shape.in_channels, shape.in_channels, shape.input_size)


class LatencyTable:
    """Block latencies for one target and batch size; missing entries are measured when
    first asked for and written to disk by :meth:`save` (kept in memory where the disk
    refuses them).

    ``measurer`` (for tests, or another protocol) times one entry; by default it builds the
    entry's module and runs :func:`cse_nets.latency.measure.measure_module`. ``fingerprint``
    overrides the key (tests); by default it is the target's, plus the batch and format.
    """

    def __init__(self, target: str, *, batch: int = 1, directory: str | Path | None = None,
                 protocol: Protocol | None = None, measurer: Measurer | None = None,
                 fingerprint: dict[str, str] | None = None) -> None:
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.target = target
        self.batch = batch
        self.protocol = protocol
        if fingerprint is None:
            fingerprint = target_fingerprint(target)  # also refuses unknown/unusable targets
        self.fingerprint = {**fingerprint, "batch": str(batch), "format": str(TABLE_FORMAT)}
        self.directory = Path(directory) if directory is not None else default_table_dir()
        self._measurer = measurer or self._measure
        self._entries: dict[str, Timing] = self._read(warn=True)
        self._unsaved = False
        self.measured = 0  # entries this object has measured (not read from disk)

    @property
    def path(self) -> Path:
        text = json.dumps(self.fingerprint, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self.directory / f"{self.target}-b{self.batch}-{digest}.json"

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry: Entry) -> bool:
        return entry.key in self._entries

    def _measure(self, entry: Entry) -> Timing:
        return measure_module(entry.module(), (self.batch, *entry.input_chw), self.target,
                              protocol=self.protocol)

    def timing(self, entry: Entry) -> Timing:
        """The entry's measurement, measured now if the table does not have it yet."""
        found = self._entries.get(entry.key)
        if found is None:
            found = self._measurer(entry)
            self._entries[entry.key] = found
            self._unsaved = True
            self.measured += 1
        return found

    def latency(self, entry: Entry) -> float:
        """The entry's latency in seconds (median of the protocol)."""
        return self.timing(entry).median_s

    def _read(self, *, warn: bool) -> dict[str, Timing]:
        """The entries on disk; empty (with a warning) if the file is damaged."""
        path = self.path
        try:
            # bytes that are not text: a UnicodeDecodeError (a ValueError), caught below
            data = json.loads(path.read_bytes())
            if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
                raise ValueError("its key does not match this table's")
            entries = data["entries"]
            if not isinstance(entries, dict):
                raise ValueError("entries is not an object")
            return {str(key): Timing.from_dict(value) for key, value in entries.items()}
        except (FileNotFoundError, NotADirectoryError):  # no table yet, or no folder for one
            return {}
        except (OSError, ValueError, KeyError, TypeError) as err:
            if warn:
                warnings.warn(f"latency table {path} is unreadable ({str(err)[:100]}); "
                              f"rebuilding it", stacklevel=3)
            return {}

    def save(self) -> None:
        """Merge with what is on disk now and replace the file atomically; a folder that
        cannot be written is a warning, and the entries stay in this object.

        Several processes (Ray trials) may share a table: each writes a temporary file in
        the same directory and renames it over the table, so a reader sees the old or the
        new file, never a torn one. Two writers that read before either renames each write
        their own new entries on top of the older file, so the later rename drops the
        earlier one's new entries: at worst those are measured again by someone later.
        """
        if not self._unsaved:
            return
        # Ours win on a clash: both are measurements of the same thing.
        self._entries = {**self._read(warn=False), **self._entries}
        data = {"fingerprint": self.fingerprint,
                "entries": {key: timing.to_dict()
                            for key, timing in sorted(self._entries.items())}}
        self._unsaved = False
        try:
            write_text_atomically(self.path, json.dumps(data, indent=1))
        except OSError as err:
            # The measurements are good; only a later process would have to repeat them.
            # The same text every time, so Python shows it once per process.
            warnings.warn(f"latency table {self.path} cannot be written "
                          f"({err.strerror or err}); its measurements are kept in memory, "
                          "for this process only", stacklevel=3)

    def latencies(self, entries: Iterable[Entry]) -> list[float]:
        """Latencies of ``entries`` (measuring the missing ones), saved once at the end."""
        try:
            return [self.latency(entry) for entry in entries]
        finally:
            self.save()


@dataclass(frozen=True)
class PredictedPart:
    """One entry of a prediction: its table latency, and that minus the call overhead."""

    part: str  # stem, stage<i>, head
    entry: Entry
    latency_s: float  # as measured alone
    net_s: float  # latency_s minus the per-call overhead: what it adds to a network


@dataclass(frozen=True)
class Prediction:
    """A network's predicted latency: ``sum(part.net_s) + overhead_s``."""

    parts: tuple[PredictedPart, ...]
    overhead_s: float  # the runtime's per-call cost, paid once per network

    @property
    def total_s(self) -> float:
        return sum(part.net_s for part in self.parts) + self.overhead_s

    def by_part(self) -> dict[str, float]:
        """Seconds per stem / stage / head (net of overhead), in forward order."""
        totals: dict[str, float] = {}
        for part in self.parts:
            totals[part.part] = totals.get(part.part, 0.0) + part.net_s
        return totals


def table_for(target: str, table: LatencyTable | None, batch: int,
              directory: str | Path | None) -> LatencyTable:
    """``table`` if it is for ``target`` and ``batch`` (``ValueError`` if not), else the
    table for them in ``directory`` (default :func:`default_table_dir`)."""
    if table is None:
        return LatencyTable(target, batch=batch, directory=directory)
    if table.target != target or table.batch != batch:
        raise ValueError(f"the table is for {table.target} batch {table.batch}, not {target} "
                         f"batch {batch}")
    return table


def predict_latency(arch: Arch, shape: InputShape, target: str = DEFAULT_TARGET, *,
                    table: LatencyTable | None = None, batch: int = 1,
                    directory: str | Path | None = None) -> Prediction:
    """Predicted latency of ``build_network(arch, shape)`` on ``target`` from the table
    (the default one for ``target`` and ``batch`` unless ``table`` is given); entries it
    lacks are measured now and saved."""
    table = table_for(target, table, batch, directory)
    parts = network_entries(arch, shape)
    call = _call_entry(shape)
    *latencies, overhead = table.latencies([entry for _, entry in parts] + [call])
    return Prediction(
        parts=tuple(PredictedPart(part, entry, latency, latency - overhead)
                    for (part, entry), latency in zip(parts, latencies, strict=True)),
        overhead_s=overhead,
    )


@dataclass(frozen=True)
class OpComparison:
    """One stage position: the stage as BTN blocks vs as CSE blocks, same shapes."""

    part: str  # stage<i>
    op: str  # what the reference architecture uses there
    c_in: int
    c_out: int
    size: int  # the stage's input side length
    stride: int
    blocks: int
    btn_s: float  # sum over the stage's blocks, net of call overhead
    cse_s: float

    @property
    def cse_saves_s(self) -> float:
        """Positive where CSE blocks are faster than BTN blocks here."""
        return self.btn_s - self.cse_s


def compare_ops(arch: Arch, shape: InputShape, target: str = DEFAULT_TARGET, *,
                table: LatencyTable | None = None, batch: int = 1,
                directory: str | Path | None = None, btn_t: int = 6, cse_r: int = 16,
                cse_cap: int = 8) -> list[OpComparison]:
    """Per stage of ``arch`` at ``shape``: the table latency of that stage built from BTN
    blocks and from CSE blocks, at the same input resolutions, widths and strides.

    A stage keeps its own ``t`` (BTN) or ``r``/``cap`` (CSE); the other op gets ``btn_t``
    (MobileNetV2's 6) or ``cse_r``/``cse_cap`` (the paper's 16 and 8).
    """
    table = table_for(target, table, batch, directory)
    overhead = table.latency(_call_entry(shape))
    rows = []
    try:
        for _, group in itertools.groupby(blocks(arch, shape.input_size),
                                          key=lambda block: block.stage_index):
            stage_blocks = list(group)
            first, stage = stage_blocks[0], stage_blocks[0].stage
            as_btn = replace(stage, op="btn", t=stage.t if stage.op == "btn" else btn_t)
            as_cse = replace(stage, op="cse", r=stage.r if stage.op == "cse" else cse_r,
                             cap=stage.cap if stage.op == "cse" else cse_cap)
            btn_s, cse_s = (sum(table.latency(block_entry(block, variant)) - overhead
                                for block in stage_blocks) for variant in (as_btn, as_cse))
            rows.append(OpComparison(f"stage{first.stage_index + 1}", stage.op, first.c_in,
                                     stage.c, first.input_size, stage.s, stage.n, btn_s,
                                     cse_s))
    finally:
        table.save()
    return rows
