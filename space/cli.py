"""The one rule every command line here follows: bad input is one line and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps

__all__ = ["BAD_INPUT", "exits_on_bad_input", "first_line"]

BAD_INPUT = 2

Main = Callable[[Sequence[str] | None], int | None]


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (library errors can run to pages)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


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
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
