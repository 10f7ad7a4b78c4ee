"""Files and JSON people hand us: opened without hanging, bounded in size, depth and
integer width.

A named pipe (FIFO) passed as a file would block its reader until something writes to
it, possibly forever; :func:`open_file` refuses one. Architectures and ``model.json``
files are a few kilobytes; anything far larger is not one (``/dev/zero``, a dataset named
by mistake), JSON nested deeper than Python's recursion limit cannot be parsed at all,
and an integer beyond 64 bits (``10^400``) fits no size or count here and overflows the
float and tensor arithmetic downstream. All are one-line ``ValueError`` s here.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_INT", "open_file", "parse_json", "read_json_file"]

MAX_JSON_BYTES = 1 << 20  # 1 MiB: hundreds of times the largest architecture file
MAX_JSON_INT = 2**63 - 1  # the widest integer torch and numpy sizes hold


def open_file(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading; ``ValueError`` naming ``what`` and the file if it
    cannot be opened or is a named pipe (FIFO)."""
    try:
        # Non-blocking, or opening a FIFO waits for a writer before it can be refused.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{what} {path} is a named pipe (FIFO), not a file")
    os.set_blocking(fd, True)  # a device such as /dev/zero then reads as a file does
    return os.fdopen(fd, "rb")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    # Digits counted first: int() of thousands of digits is slow, and refused past 4,300.
    if digits <= len(str(MAX_JSON_INT)) and abs(value := int(text)) <= MAX_JSON_INT:
        return value
    raise ValueError(f"integer of {digits} digits is beyond 64 bits")


def parse_json(text: str, what: str) -> Any:
    """``json.loads(text)``; ``ValueError`` naming ``what`` if it is not JSON we can read."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply to read") from None
    except ValueError as err:  # from _bounded_int
        raise ValueError(f"{what}: {err}") from None


def read_json_file(path: Path, what: str = "file") -> Any:
    """The JSON value in ``path``; ``ValueError`` naming ``what`` and the file otherwise."""
    with open_file(path, what) as file:
        try:
            data = file.read(MAX_JSON_BYTES + 1)  # a size limit that works on /dev/zero too
        except OSError as err:  # a folder opens, but does not read
            raise ValueError(f"cannot read {what} {path}: {err.strerror}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} {path} is larger than {MAX_JSON_BYTES >> 20} MiB: not a "
                         "JSON file of this project")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    return parse_json(text, f"{what} {path}")
