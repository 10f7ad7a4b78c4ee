"""int8 ONNX models: static quantisation with onnxruntime's quantiser, and what stays float.

:func:`quantize_onnx` is the one recipe, used both for the ``cpu-onnxruntime-int8``
latency target (each block quantised with random calibration inputs: latency does not
depend on the values) and for ``search.export``'s ``model.int8.onnx`` (calibrated on
training images):

* ``quant_pre_process`` first (ONNX shape inference, onnxruntime's basic optimisations):
  it folds BatchNorm into the convolutions and removes the exporters' Identity/Constant
  nodes, without which ``quantize_static`` fails on a legacy-exported block (a bias read
  through an Identity);
* QOperator format (``QLinearConv``, ``QLinearMatMul``, ...), not QDQ: the graph itself
  then says which ops run in int8 and which stay float (:func:`float_ops`), where a QDQ
  graph keeps every float op and leaves the fusion to the session. Measured here (2-core
  Xeon with AVX-512 VNNI, onnxruntime 1.32): mobilenetv2 at 3x32x32 ran in 0.83 ms in
  both formats;
* unsigned 8-bit activations, signed 8-bit weights (onnxruntime's x86 default) quantised
  per output channel: a per-tensor scale is the known accuracy loss of depthwise
  convolutions, whose channels differ by orders of magnitude;
* MinMax calibration: one pass over the calibration batches.

onnxruntime's quantiser needs the ``onnx`` package; :func:`check_quantizer` says so in one
line where it is missing.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CALIBRATION_BATCHES",
    "INT8_OPS",
    "QUANTIZER",
    "check_quantizer",
    "float_ops",
    "quantize_onnx",
    "random_batches",
]

CALIBRATION_BATCHES = 4  # random batches that calibrate one block for the latency target
# Op types (besides QLinear*) that take 8-bit data or make it; DequantizeLinear makes float.
INT8_OPS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
                      "MatMulInteger", "QGemm"})
# How quantize_onnx quantises: an int8 latency table is keyed on it (a table measured on
# blocks quantised otherwise is not reused) and an export's metrics.json records it.
QUANTIZER = ("quantize_static: QOperator, per-channel 7-bit weights (reduce_range), "
             "uint8 activations, MinMax")


def check_quantizer() -> None:
    """``ValueError`` in one line where onnxruntime's quantiser cannot be imported."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as err:
        raise ValueError(f"int8 needs onnxruntime's quantiser (onnxruntime.quantization, "
                         f"which needs the onnx package): {err}") from None


class _Batches:
    """onnxruntime's ``CalibrationDataReader`` protocol over arrays: ``quantize_static``
    only calls ``get_next`` until it returns None."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = (
            {input_name: np.ascontiguousarray(batch, dtype=np.float32)} for batch in batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def random_batches(shape: Sequence[int], count: int = CALIBRATION_BATCHES,
                   seed: int = 0) -> list[np.ndarray]:
    """``count`` standard-normal float32 arrays of ``shape``, from ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape), dtype=np.float32) for _ in range(count)]


def quantize_onnx(model: bytes, batches: Iterable[np.ndarray]) -> bytes:
    """``model`` (one float input) statically quantised to int8, calibrated on ``batches``
    (arrays the model takes as its input, normalised as it expects)."""
    check_quantizer()
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load_from_string(model).graph.input[0].name
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="cse-nas-int8-") as folder:
        source, prepared, quantised = (Path(folder) / name for name in
                                       ("model.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        # The quantiser logs advice on the root logger at every call ("consider
        # pre-processing", already done): quiet while it runs, restored after.
        root.setLevel(logging.ERROR)
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            # 7-bit weights (reduce_range): x86 CPUs without VNNI multiply u8 by s8 in
            # pairs that saturate at 16 bits, which at 8 bits put a test network's logits
            # 17% of their range off fp32 on an AVX2-only machine (0.9% with 7 bits). The
            # file must be right on whatever CPU it is deployed to.
            quantize_static(str(prepared), str(quantised), _Batches(input_name, batches),
                            quant_format=QuantFormat.QOperator, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=True)
        finally:
            root.setLevel(level)
        return quantised.read_bytes()


def float_ops(model: bytes | str | Path) -> dict[str, int]:
    """Op types of a quantised graph that still compute in float, with how many nodes of
    each, most frequent first.

    Read from the graph, in its (topological) node order: a tensor is float if it is a
    float graph input or comes out of a ``DequantizeLinear`` or of a float node; a node is
    float if its data input (the first) is. ``QLinear*`` and :data:`INT8_OPS` nodes take
    8-bit data, and an op such as ``Reshape`` on 8-bit data is not float either.
    """
    import onnx

    proto = (onnx.load_from_string(model) if isinstance(model, bytes)
             else onnx.load(str(model)))
    floating = {value.name for value in proto.graph.input
                if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    counts: Counter[str] = Counter()
    for node in proto.graph.node:
        op = node.op_type
        if op == "DequantizeLinear":
            floating.update(node.output)
        elif (not op.startswith("QLinear") and op not in INT8_OPS and node.input
              and node.input[0] in floating):
            counts[op] += 1
            floating.update(node.output)
    return dict(counts.most_common())
