#!/usr/bin/env bash
# One GPU check for issue 12 on a lent GPU machine: about 6 minutes, at most 8.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]     # default: $OUT, else results/gpu-check
#
# Writes OUT_DIR/results.json, table.txt and log.txt and prints the table last. Uses the
# machine's own torch when it has one (the GPU image does), else a .venv made from this
# project; the project's other packages that the machine lacks (Ray, Optuna, ...) come
# from wheels carried in .whl/ (scripts/gpu_wheels.sh), since it has no network. Without
# them every section but the search still runs, and the search says why it was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-results/gpu-check}}"
mkdir -p "$out"

python=python3
if ! "$python" -c "import torch, torchvision" 2>/dev/null; then
    [ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
    python=.venv/bin/python
fi
if ! "$python" -c "import ray, optuna" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/cse-nas-site .whl/*.whl
    export PYTHONPATH=/tmp/cse-nas-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 470 "$python" benchmarks/gpu_check.py --out "$out" --budget-s 440 2>&1 \
    | tee "$out/log.txt"
