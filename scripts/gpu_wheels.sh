#!/usr/bin/env bash
# Wheels of the project's packages that the lent GPU machine lacks, into .whl/, for
# benchmarks/gpu_check.sh to install there (it has no network). Run here, in the repo root,
# before the device call, and name .whl in its carry list (.gitignore ignores it). Versions are this venv's;
# the GPU image's python is 3.12. Ray's wheel (79 MB) is too large for the 64 MiB the
# call may carry, so its Java jar (ray/jars, 34 MB, unused by Python) is dropped from it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir .whl
packages="ray optuna sqlalchemy alembic mako colorlog jsonschema
jsonschema-specifications referencing rpds-py pydantic pydantic-core annotated-types
typing-inspection"
pins=$("$python" - $packages <<'PY'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
PY
)
# shellcheck disable=SC2086
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $pins
"$python" - <<'PY'
import zipfile
from pathlib import Path

for wheel in Path(".whl").glob("ray-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith("ray/jars/"):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if not line.startswith(b"ray/jars/"))
            dst.writestr(item, data)
    slim.replace(wheel)
PY
du -sh .whl
