"""Decoding an image folder: serial against threads against processes, timed in one run.

Each way decodes the same files with :mod:`search.data.folder`'s own per-image decoder
(open, JPEG draft, convert, shorter side resized, centre crop) and reports images per
second and the ratio to serial. Threads and processes get ``--chunk`` images per task;
processes start from a forkserver (forking after torch has started threads can hang), and
their start-up is timed, as a load would pay it. The default folder is 3,000 small
generated images (24-72 px, PNG and JPEG) written to a temporary folder; ``--folder``
times your own::

    python benchmarks/bench_folder_decode.py
    python benchmarks/bench_folder_decode.py --folder ~/photos --size 64
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from search.data.folder import decode_image, scan_folder
from tests.search.folders import make_image_folder


def _decode_chunk(paths: list[str], mode: str, size: int) -> int:
    return sum(decode_image(path, mode, size) is not None for path in paths)


def _time(paths: list[str], size: int, chunk: int,
          pool: Callable[[], Executor] | None) -> float:
    decode = functools.partial(_decode_chunk, mode="RGB", size=size)
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    start = time.perf_counter()
    if pool is None:
        done = sum(map(decode, chunks))
    else:
        with pool() as executor:
            done = sum(executor.map(decode, chunks))
    elapsed = time.perf_counter() - start
    assert done == len(paths), f"only {done} of {len(paths)} images decoded"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, help="an image folder (default: generated)")
    parser.add_argument("--images", type=int, default=1000, help="per class, when generated")
    parser.add_argument("--size", type=int, default=32, help="output side in pixels")
    parser.add_argument("--chunk", type=int, default=64, help="images per task")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or make_image_folder(Path(tmp), args.images)
        paths = scan_folder(folder).paths
        forkserver = multiprocessing.get_context("forkserver")
        ways: dict[str, Callable[[], Executor] | None] = {
            "serial": None,
            **{f"{n} threads": functools.partial(ThreadPoolExecutor, n) for n in (2, 4)},
            "2 processes": functools.partial(ProcessPoolExecutor, 2, mp_context=forkserver),
        }
        print(f"{len(paths)} images from {folder} to {args.size} px, {args.chunk} per task")
        for repeat in range(args.repeats):
            serial = None
            for name, pool in ways.items():
                elapsed = _time(paths, args.size, args.chunk, pool)
                serial = serial or elapsed
                print(f"run {repeat + 1}  {name:12} {len(paths) / elapsed:8.0f} img/s  "
                      f"x{serial / elapsed:.2f} of serial", flush=True)


if __name__ == "__main__":
    main()
