"""The one rule every command line here follows: bad input is one line and exit status 2.

Shared by the ``cse_nets`` and ``search`` command lines: an argparse parser whose usage
errors are that one line too, argument types for the checks they all need, and the
wrapper that turns a ``ValueError`` anywhere below ``main`` into what the user sees.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from functools import wraps

from space import Arch, InputShape, dataset_shape, load_arch, parse_input_shape
from space.checks import positive_int_arg

__all__ = ["BAD_INPUT", "FAILED", "Interrupted", "OneLineParser", "RunFailed",
           "exits_on_bad_input", "first_line", "positive_int_arg"]

BAD_INPUT = 2
FAILED = 1

Main = Callable[[Sequence[str] | None], int | None]


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (library errors can run to pages)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal: ``str()`` is the one line to print, ``status`` the exit
    status (128 + the signal's number)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RunFailed(RuntimeError):
    """A run that took its input and did its work, none of which succeeded (a search whose
    every trial failed): ``str()`` is the one ``error:`` line, the exit status
    :data:`FAILED`, as the input itself was not known to be bad."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a ``ValueError``: under :func:`exits_on_bad_input` it
    is the same single ``error: ...`` line and exit status 2 as any other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """``--arch`` and the input it is built for: ``--dataset``, or ``--input`` and
    ``--classes``."""
    parser.add_argument("--arch", required=True, help="preset name or architecture JSON file")
    parser.add_argument("--dataset", help="dataset whose input shape and classes to use")
    parser.add_argument("--input", help="input shape CxHxW instead of --dataset, e.g. 3x32x32")
    parser.add_argument("--classes", type=positive_int_arg, default=10,
                        help="classes, with --input")


def network_from_args(args: argparse.Namespace) -> tuple[Arch, InputShape]:
    """The architecture and input shape :func:`add_network_arguments` asked for, checked."""
    if (args.dataset is None) == (args.input is None):
        raise ValueError("give exactly one of --dataset or --input")
    shape = (dataset_shape(args.dataset) if args.dataset
             else parse_input_shape(args.input, args.classes))
    arch = load_arch(args.arch)
    arch.check_input_size(shape.input_size)
    return arch, shape


def exits_on_bad_input(main: Main) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main(argv)``: ``ValueError``/``OSError`` become ``error: ...`` and exit 2
    (:class:`RunFailed`: exit 1).

    Code raises ``ValueError`` with a message that names the bad value; this is the one
    place that turns it into what a user sees, so no traceback reaches a terminal.
    """

    @wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv) or 0
        except (ValueError, OSError, RunFailed) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {message}", file=sys.stderr)
            return FAILED if isinstance(err, RunFailed) else BAD_INPUT
        except KeyboardInterrupt as err:
            print(str(err) or "interrupted", file=sys.stderr)
            return err.status if isinstance(err, Interrupted) else 128 + signal.SIGINT

    return wrapper
