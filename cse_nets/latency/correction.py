"""A per-target correction of the block table's sum, fitted on measured whole networks.

The table (:mod:`cse_nets.latency.table`) times every block alone; a network is not quite
the sum of its blocks. Measured here on ``cpu-onnxruntime``, 43 networks at 3x32x32, the
sum missed by a median 8.9% (worst 33%), for reasons a block alone cannot show:

* weights: a block timed alone keeps its weights in the core's cache between runs, a
  network of a few MB (2 MiB L2 here) fetches them again on every call. The smallest
  networks with the most weights were under-predicted most (0.39 ms for 0.58 measured,
  1.1M parameters, most of them in 256-channel blocks at 2x2);
* data: PReLU is a branch per element, and a block fed random inputs mispredicts about
  half of them, while inside a network its input is the smoother output of the blocks
  before it. One CSE block (48->96 channels, 32x32) took 1.06 ms on random inputs and
  0.91 ms on the inputs the network gave it; hence per-op-type factors.

So the prediction is ``overhead + sum(c_f * feature_f)`` over :data:`FEATURES`: the sum of
table latencies (net of the call overhead) per entry kind, and the network's weights in MB.
The coefficients are fitted by non-negative least squares on the relative error over
:data:`FIT_NETWORKS` architectures sampled from the search space (seed :data:`FIT_SEED`)
and measured whole, shrunk towards the plain sum (factor 1 per kind, 0 for the weights) by
a small ridge term, so that a kind the sample hardly contains keeps its table value. A
per-block constant was tried and left out: fitted on 40 networks it over-predicted the
smallest held-out ones by up to 22%.

One correction per table (target, versions, CPU or GPU, batch) and input shape, fitted the
first time it is needed and kept beside the table: a user on another machine gets their
own.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cse_nets.latency.measure import DEFAULT_TARGET, measure_network
from cse_nets.latency.table import LatencyTable, Prediction, predict_latency, table_for
from cse_nets.latency.timing import Timing
from space import CHOICES, Arch, InputShape, arch_from_params
from space.files import write_text_atomically
from space.footprint import FLOAT_BYTES, network_footprint

__all__ = [
    "FEATURES",
    "FIT_NETWORKS",
    "FIT_SEED",
    "CorrectedPrediction",
    "Correction",
    "correction_for",
    "features",
    "fit_coefficients",
    "nnls",
    "predict_corrected",
    "sample_archs",
]

KINDS = ("stem", "btn", "cse", "head")  # the table's entry kinds, without the call probe
FEATURES = (*KINDS, "weights_mb")
PRIOR = {kind: 1.0 for kind in KINDS}  # the plain sum of blocks; 0 for the other features
RIDGE = 0.01  # weight of the pull towards PRIOR, against squared relative errors
FIT_NETWORKS = 24  # held-out errors hardly moved from 15 to 40 (median 4.5% and 3.0% on
# cpu-onnxruntime, 2.8% and 2.4% on int8), and each network is a whole-network measurement
FIT_SEED = 0  # the benchmark evaluates on other seeds
CORRECTION_FORMAT = 1  # bump when the features or the fit change

NetworkMeasurer = Callable[[Arch], Timing]


def sample_archs(count: int, seed: int, input_size: int) -> list[Arch]:
    """``count`` architectures from uniform draws over the search space's choices."""
    rng = random.Random(seed)
    return [arch_from_params({name: rng.choice(choices) for name, choices in CHOICES.items()},
                             input_size)
            for _ in range(count)]


def features(arch: Arch, shape: InputShape, prediction: Prediction) -> dict[str, float]:
    """The correction's inputs for one network: seconds per entry kind (net of the call
    overhead) and weights in MB."""
    found = dict.fromkeys(FEATURES, 0.0)
    for part in prediction.parts:
        found[part.entry.kind] += part.net_s
    found["weights_mb"] = network_footprint(arch, shape).params * FLOAT_BYTES / 1e6
    return found


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x >= 0`` minimising ``|a x - b|`` (Lawson and Hanson's active-set method)."""
    n = a.shape[1]
    passive = np.zeros(n, dtype=bool)
    x = np.zeros(n)
    gradient = a.T @ (b - a @ x)
    for _ in range(3 * n):  # each pass frees one variable; 3n is more than it ever needs
        if passive.all() or gradient[~passive].max() <= 1e-12:
            break
        passive[np.flatnonzero(~passive)[np.argmax(gradient[~passive])]] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            # Step back to where the first variable would turn negative and fix it at 0.
            blocked = passive & (z <= 0)
            x = x + np.min(x[blocked] / (x[blocked] - z[blocked])) * (z - x)
            passive &= x > 1e-15
        gradient = a.T @ (b - a @ x)
    return x


def fit_coefficients(rows: Sequence[tuple[dict[str, float], float, float]]) -> dict[str, float]:
    """Coefficients from ``(features, overhead_s, measured_s)`` per network: non-negative,
    minimising the squared relative error plus ``RIDGE`` times the squared distance to
    ``PRIOR``."""
    if not rows:
        raise ValueError("a correction needs at least one measured network")
    a = np.array([[found[name] for name in FEATURES] for found, _, _ in rows])
    measured = np.array([m for _, _, m in rows])
    rest = measured - np.array([overhead for _, overhead, _ in rows])
    a, rest = a / measured[:, None], rest / measured  # relative errors
    prior = np.array([PRIOR.get(name, 0.0) for name in FEATURES])
    scale = np.sqrt(RIDGE)
    coefficients = nnls(np.vstack([a, scale * np.eye(len(FEATURES))]),
                        np.concatenate([rest, scale * prior]))
    return dict(zip(FEATURES, map(float, coefficients), strict=True))


@dataclass(frozen=True)
class Correction:
    """Fitted coefficients, and the networks they were fitted on."""

    coefficients: dict[str, float]
    networks: int
    seed: int

    def apply(self, found: dict[str, float], overhead_s: float) -> float:
        return overhead_s + sum(self.coefficients[name] * found[name] for name in FEATURES)


@dataclass(frozen=True)
class CorrectedPrediction:
    """A network's latency from the table (``blocks``) and corrected (``total_s``)."""

    blocks: Prediction
    total_s: float
    correction: Correction


def _key(table: LatencyTable, shape: InputShape, networks: int, seed: int) -> dict[str, str]:
    return {**table.fingerprint, "shape": f"{'x'.join(map(str, shape.chw))}/{shape.num_classes}",
            "networks": str(networks), "seed": str(seed),
            "correction_format": str(CORRECTION_FORMAT)}


def _path(table: LatencyTable, key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return table.directory / f"{table.target}-b{table.batch}-correction-{digest}.json"


def _read(path: Path, key: dict[str, str], networks: int, seed: int) -> Correction | None:
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # none yet, or no folder for one
        return None
    except OSError as err:  # unreadable: fit it again, as for a damaged file
        warnings.warn(f"latency correction {path} is unreadable ({err}); fitting it again",
                      stacklevel=4)
        return None
    try:
        data = json.loads(raw)  # bytes that are not text: a UnicodeDecodeError, caught
        if not isinstance(data, dict) or data.get("key") != key:
            raise ValueError("its key does not match this correction's")
        coefficients = {name: float(data["coefficients"][name]) for name in FEATURES}
        if not all(np.isfinite(v) and v >= 0 for v in coefficients.values()):
            raise ValueError("a coefficient is negative or not finite")
    except (ValueError, KeyError, TypeError) as err:
        warnings.warn(f"latency correction {path} is unreadable ({str(err)[:100]}); fitting "
                      "it again", stacklevel=4)
        return None
    return Correction(coefficients, networks, seed)


def correction_for(table: LatencyTable, shape: InputShape, *, networks: int | None = None,
                   seed: int = FIT_SEED, measurer: NetworkMeasurer | None = None,
                   progress: Callable[[str], None] | None = None) -> Correction:
    """The table's correction for ``shape``: read from beside the table, or fitted now on
    ``networks`` sampled architectures (default :data:`FIT_NETWORKS`, read at the call)
    (seed ``seed``), each measured whole by ``measurer`` (default: :func:`measure_network`
    on the table's target, batch and protocol) and predicted by the table, then saved."""
    networks = FIT_NETWORKS if networks is None else networks
    key = _key(table, shape, networks, seed)
    path = _path(table, key)
    found = _read(path, key, networks, seed)
    if found is not None:
        return found
    measurer = measurer or (lambda arch: measure_network(
        arch, shape, table.target, batch=table.batch, protocol=table.protocol))
    if progress is not None:
        progress(f"fitting the {table.target} latency correction for {key['shape']} on "
                 f"{networks} measured networks (once per machine)")
    rows, fit = [], []
    for arch in sample_archs(networks, seed, shape.input_size):
        prediction = predict_latency(arch, shape, table.target, table=table,
                                     batch=table.batch)
        measured = measurer(arch).median_s
        found_features = features(arch, shape, prediction)
        rows.append((found_features, prediction.overhead_s, measured))
        fit.append({"arch": str(arch), "measured_s": measured,
                    "overhead_s": prediction.overhead_s, "features": found_features})
    correction = Correction(fit_coefficients(rows), networks, seed)
    data = {"key": key, "coefficients": correction.coefficients, "fit": fit}
    try:
        write_text_atomically(path, json.dumps(data, indent=1))
    except OSError as err:  # a read-only cache: the fit still serves this process
        warnings.warn(f"latency correction not saved to {path}: {err}", stacklevel=2)
    return correction


def predict_corrected(arch: Arch, shape: InputShape, target: str = DEFAULT_TARGET, *,
                      table: LatencyTable | None = None, batch: int = 1,
                      directory: str | Path | None = None,
                      correction: Correction | None = None) -> CorrectedPrediction:
    """The table's prediction for ``build_network(arch, shape)`` on ``target`` and its
    corrected total (``correction``, default :func:`correction_for` the table and
    ``shape``: fitted now if it is not on disk yet)."""
    table = table_for(target, table, batch, directory)
    blocks = predict_latency(arch, shape, target, table=table, batch=batch)
    correction = correction or correction_for(table, shape)
    return CorrectedPrediction(blocks, correction.apply(features(arch, shape, blocks),
                                                        blocks.overhead_s), correction)

