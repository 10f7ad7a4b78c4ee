"""Measured inference latency of a module, a whole network or an ONNX file, on a target.

Targets (all batch 1 unless a batch is given; always inference, eval mode):

* ``cpu-onnxruntime``: exported to ONNX, run by onnxruntime's CPU provider with one
  intra-op and one inter-op thread, sequential execution, all graph optimisations;
* ``cpu-onnxruntime-int8``: the same, after static int8 quantisation of the ONNX model
  (:mod:`cse_nets.latency.quantize`, calibrated on random inputs: latency does not depend
  on the values), as ``search.export``'s ``model.int8.onnx`` runs;
* ``cpu-torch``: eager PyTorch under ``inference_mode`` with one thread;
* ``cuda``: eager PyTorch on the GPU, each run timed by CUDA events (batch 1 and a larger
  batch: the caller picks; :data:`CUDA_BATCHES` is what the CLI measures).

Every run gets the next of :data:`DISTINCT_INPUTS` random inputs, in turn. Measured here:
timed on one repeated input, paper-mix's blocks summed to 2.09 ms but the network took
3.24 ms; with 16 inputs in turn, 3.35 ms vs 3.15 ms. PReLU (onnxruntime's and torch's) is
a branch per element, and on one input repeated thousands of times the branch predictor
learns a small block's sign pattern, which it cannot in a whole network nor on real
images; the repeated input made small CSE blocks look 3x cheaper than they are.

CPU targets time each run by the calling thread's CPU time (``time.thread_time``), not the
wall clock: with one intra-op thread, onnxruntime and torch compute on the calling thread,
so on an idle machine the two agree, and on a shared one the CPU time leaves out the time
the thread waited for a core. Measured here at load average 3.5 on 2 cores, one network
four times: wall-clock medians 7.72, 4.40, 4.23 and 4.94 ms (best rounds 3.69-3.93 ms),
thread CPU time 3.725, 3.704, 3.716 and 3.714 ms. Another job can still slow the thread
through the caches it shares, which the CPU time keeps.

Every target times with :func:`cse_nets.latency.timing.time_calls`, the one protocol. Thread
counts are pinned for the measurement and restored after it; so is the CPU affinity when
``pin_core`` is given. It is off by default: on a machine shared with other jobs, pinning
to one core forbids the scheduler to move us off a core that another job has just taken.

ONNX export: the legacy TorchScript exporter (``dynamo=False``) is used when it exists.
Measured here (torch 2.14.1, 2-core EPYC, second call): a CSE block exports in 18 ms with
it and 515 ms with ``dynamo=True``, a BTN block in 11 ms vs 504 ms (the first dynamo call
takes 2.4 s). A search asks for table entries on demand, often dozens per trial, so the
30-50x matters; both run the same graph after onnxruntime's optimisations.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from cse_nets.latency.quantize import QUANTIZER, check_quantizer, quantize_onnx, random_batches
from cse_nets.latency.timing import Protocol, Timing, time_calls
from cse_nets.network import build_network
from space import Arch, InputShape

__all__ = [
    "CUDA_BATCHES",
    "DEFAULT_TARGET",
    "DISTINCT_INPUTS",
    "INT8_TARGET",
    "ONNX_TARGET",
    "ONNX_TARGETS",
    "TARGETS",
    "check_target",
    "cpu_model",
    "export_onnx_bytes",
    "measure_module",
    "measure_network",
    "measure_onnx",
    "target_fingerprint",
]

ONNX_TARGET = "cpu-onnxruntime"  # the target that runs ONNX models, such as an export's
INT8_TARGET = "cpu-onnxruntime-int8"  # the same runtime on statically quantised models
TARGETS = (ONNX_TARGET, INT8_TARGET, "cpu-torch", "cuda")
ONNX_TARGETS = (ONNX_TARGET, INT8_TARGET)
DEFAULT_TARGET = ONNX_TARGET  # where latency is predicted when no target is named
CUDA_BATCHES = (1, 64)
INPUT_SEED = 0  # the measured inputs are random but fixed
DISTINCT_INPUTS = 16  # runs cycle through this many inputs (see the module docstring)
T = TypeVar("T")


def check_target(target: str) -> str:
    """``target`` if it is known and usable here; ``ValueError`` naming it otherwise."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "cuda" and not torch.cuda.is_available():
        raise ValueError("target 'cuda' needs a CUDA device, and torch sees none here")
    if target == INT8_TARGET:
        check_quantizer()
    return target


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def target_fingerprint(target: str) -> dict[str, str]:
    """What a measurement on ``target`` depends on besides the model: the key of a table."""
    check_target(target)
    found = {"target": target, "torch": torch.__version__, "machine": platform.machine()}
    if target == "cuda":
        found.update(gpu=torch.cuda.get_device_name(), cuda=str(torch.version.cuda))
    else:
        found["cpu"] = cpu_model()
    if target in ONNX_TARGETS:
        found["onnxruntime"] = _version("onnxruntime")
    if target == INT8_TARGET:
        found["quantizer"] = QUANTIZER
    return found


@contextlib.contextmanager
def _pinned(pin_core: int | None) -> Iterator[None]:
    """One torch thread (and optionally one core) while measuring; restored afterwards."""
    threads = torch.get_num_threads()
    affinity = None
    if pin_core is not None:
        if not hasattr(os, "sched_setaffinity"):
            raise ValueError("pin_core needs os.sched_setaffinity (Linux)")
        affinity = os.sched_getaffinity(0)
        if pin_core not in affinity:
            raise ValueError(f"pin_core {pin_core} is not one of this process's CPUs "
                             f"{sorted(affinity)}")
        os.sched_setaffinity(0, {pin_core})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def export_onnx_bytes(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` (in eval mode) as an ONNX model with a fixed input shape, in memory."""
    module = module.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter announces its deprecation on every call.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), buffer, dynamo=False,
                              input_names=["input"], output_names=["output"])
        except (TypeError, ValueError, RuntimeError):  # a torch without the legacy exporter
            program = torch.onnx.export(module, (example,), None, dynamo=True, verbose=False)
            return program.model_proto.SerializeToString()
    return buffer.getvalue()


def _onnx_session(model: bytes | str | Path):  # -> onnxruntime.InferenceSession
    import onnxruntime  # imported here: cpu-torch and cuda users need not pay for it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no per-session warnings on stderr
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _examples(input_shape: Sequence[int]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(INPUT_SEED)
    return [torch.randn(*input_shape, generator=generator) for _ in range(DISTINCT_INPUTS)]


def _in_turn(items: Sequence[T]) -> Callable[[], T]:
    """A function that returns the next of ``items`` on each call, round and round."""
    state = {"next": 0}

    def take() -> T:
        index = state["next"]
        state["next"] = (index + 1) % len(items)
        return items[index]

    return take


def _onnx_timed_run(session, examples: Sequence[np.ndarray]) -> Callable[[], float]:
    name = session.get_inputs()[0].name
    # Feeds built up front, so the timed call is session.run alone.
    feed = _in_turn([{name: example} for example in examples])
    clock = time.thread_time  # see the module docstring

    def timed() -> float:
        inputs = feed()
        start = clock()
        session.run(None, inputs)
        return clock() - start

    return timed


def _torch_timed_run(module: nn.Module, examples: Sequence[torch.Tensor]) -> Callable[[], float]:
    example = _in_turn(examples)
    clock = time.thread_time  # see the module docstring

    def timed() -> float:
        x = example()
        with torch.inference_mode():
            start = clock()
            module(x)
            return clock() - start

    return timed


def _cuda_timed_run(module: nn.Module, examples: Sequence[torch.Tensor]) -> Callable[[], float]:
    example = _in_turn(examples)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timed() -> float:
        x = example()
        with torch.inference_mode():
            start.record()
            module(x)
            end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0  # events report milliseconds

    return timed


def measure_module(module: nn.Module, input_shape: Sequence[int], target: str, *,
                   protocol: Protocol | None = None, pin_core: int | None = None) -> Timing:
    """Latency of ``module`` on one input of ``input_shape`` (batch dimension included).

    ``module`` is put in eval mode (and, for ``cuda``, moved to the GPU).
    """
    check_target(target)
    examples = _examples(input_shape)
    module = module.eval()
    with _pinned(pin_core):
        if target in ONNX_TARGETS:
            model = export_onnx_bytes(module, examples[0])
            if target == INT8_TARGET:
                model = quantize_onnx(model, random_batches(input_shape))
            session = _onnx_session(model)
            return time_calls(_onnx_timed_run(session, [x.numpy() for x in examples]),
                              protocol)
        if target == "cpu-torch":
            return time_calls(_torch_timed_run(module, examples), protocol)
        module = module.cuda()
        return time_calls(_cuda_timed_run(module, [x.cuda() for x in examples]), protocol)


def measure_network(arch: Arch, shape: InputShape, target: str, *, batch: int = 1,
                    protocol: Protocol | None = None, pin_core: int | None = None,
                    seed: int = 0) -> Timing:
    """Latency of the whole ``build_network(arch, shape)`` on a batch of ``batch`` images."""
    check_target(target)
    network = build_network(arch, shape, seed=seed)
    return measure_module(network, (batch, *shape.chw), target, protocol=protocol,
                          pin_core=pin_core)


def measure_onnx(model: str | Path | bytes, input_shape: Sequence[int], *,
                 protocol: Protocol | None = None, pin_core: int | None = None) -> Timing:
    """Latency of an ONNX model (a file such as ``search.export``'s ``model.onnx`` or
    ``model.int8.onnx``, or its bytes) in onnxruntime on the ``cpu-onnxruntime`` settings,
    for one float32 input."""
    try:
        session = _onnx_session(model)
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValueError(f"cannot load ONNX model {str(model)[:80]!r}: {err}") from None
    examples = [x.numpy() for x in _examples(input_shape)]
    with _pinned(pin_core):
        return time_calls(_onnx_timed_run(session, examples), protocol)
