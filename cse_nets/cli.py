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

from space.checks import positive_int

__all__ = ["BAD_INPUT", "Interrupted", "OneLineParser", "exits_on_bad_input", "first_line",
           "positive_int_arg"]

BAD_INPUT = 2

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


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a ``ValueError``: under :func:`exits_on_bad_input` it
    is the same single ``error: ...`` line and exit status 2 as any other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def positive_int_arg(text: str) -> int:
    """argparse ``type=`` for counts: ``"3"`` -> 3; ``"0"``, ``"-1"``, ``"x"`` are refused."""
    try:
        return positive_int(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def exits_on_bad_input(main: Main) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main(argv)``: ``ValueError``/``OSError`` become ``error: ...`` and exit 2.

    Code raises ``ValueError`` with a message that names the bad value; this is the one
    place that turns it into what a user sees, so no traceback reaches a terminal.
    """

    @wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv) or 0
        except (ValueError, OSError) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {message}", file=sys.stderr)
            return BAD_INPUT
        except KeyboardInterrupt as err:
            print(str(err) or "interrupted", file=sys.stderr)
            return err.status if isinstance(err, Interrupted) else 128 + signal.SIGINT

    return wrapper
