"""JSON read from files and databases people hand us: bounded in size and depth.

Architectures and ``model.json`` files are a few kilobytes; anything far larger is not one
(``/dev/zero``, a dataset named by mistake), and JSON nested deeper than Python's
recursion limit cannot be parsed at all. Both are one-line ``ValueError`` s here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MAX_JSON_BYTES", "parse_json", "read_json_file"]

MAX_JSON_BYTES = 1 << 20  # 1 MiB: hundreds of times the largest architecture file


def parse_json(text: str, what: str) -> Any:
    """``json.loads(text)``; ``ValueError`` naming ``what`` if it is not JSON we can read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply to read") from None


def read_json_file(path: Path, what: str = "file") -> Any:
    """The JSON value in ``path``; ``ValueError`` naming ``what`` and the file otherwise."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JSON_BYTES + 1)  # a size limit that works on /dev/zero too
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} {path} is larger than {MAX_JSON_BYTES >> 20} MiB: not a "
                         "JSON file of this project")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    return parse_json(text, f"{what} {path}")
