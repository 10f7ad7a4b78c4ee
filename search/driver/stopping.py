"""SIGINT and SIGTERM stop a search cleanly instead of killing it mid-write.

While trials run, SIGINT only asks Tune to stop (:class:`StopSignals` is Tune's stopper):
Tune ends every live trial. SIGTERM, a second signal, and any signal outside the trials
raise :class:`cse_nets.cli.Interrupted` at once. Either way the driver then records the
live trials as interrupted and exits with 128 + the signal's number (130 for SIGINT, 143
for SIGTERM), as shells expect of a process a signal ended. Tune's own SIGINT handler
(which ends the run as if it had finished) is switched off, and ``ray.init``'s SIGTERM
handler is replaced while the search runs.

SIGTERM sent to the whole process group also ends Ray's own processes (SIGINT they
block); Ray's core may then exit the driver before this handler runs, and the live trial
stays RUNNING until the next run marks it, as after SIGKILL.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ray import tune

from cse_nets.cli import Interrupted

__all__ = ["SIGNALS", "StopSignals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals(tune.Stopper):
    """Catches :data:`SIGNALS` for a ``with`` block; ``signum`` is the first one caught."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        # Tune's own SIGINT handler is off through TUNE_DISABLE_SIGINT_HANDLER, which
        # search.driver.tune sets (and restores) around the whole search.
        self.install()
        return self

    def install(self) -> None:
        """(Re)install the handlers: ``ray.init`` installs its own over them."""
        for signum in SIGNALS:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block a first signal only sets :attr:`signum` (Tune then stops)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        # SIGTERM does not wait for Tune: sent to the whole process group (systemd, Slurm,
        # `kill -- -PGID`), it has ended Ray's own processes too, and Tune would wait a
        # minute for them. Nor does a second signal.
        if not (self._deferred and first and signum == signal.SIGINT):
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}", 128 + signum)

    # Tune's Stopper interface, polled by its loop.
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.requested

    # Tune pickles its run config; a copy needs none of the signal state.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()
