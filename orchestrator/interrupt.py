"""Honest exits: SIGINT and SIGTERM stop a sweep gracefully and make it exit 130 or 143.

While Ray Tune runs, the first signal only asks the experiment to stop (a Tune stopper reads it):
running trials are stopped, their records are marked interrupted and their Optuna trials stay open,
so `--resume` runs them again under the same key from their last checkpoint. Anywhere else (starting
Ray or the scorers, scoring the base models) and on a second signal, it raises SweepInterrupted.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(BaseException):
    """The sweep was stopped by a signal (a BaseException, like KeyboardInterrupt, so no `except
    Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Interruption:
    """The driver's SIGINT/SIGTERM handler and what it received."""

    def __init__(self):
        self.signum: int | None = None
        self.at: float | None = None      # when the first signal arrived
        self._deferred = False

    def install(self) -> "Interruption":
        for sig in SIGNALS:
            signal.signal(sig, self._handle)
        return self

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        first = self.signum is None
        if first:
            self.signum, self.at = signum, time.time()
        if self._deferred and first:
            print(f"\n{signal.Signals(signum).name}: stopping the running trials (send it again to stop at once)",
                  file=sys.stderr, flush=True)
            return
        raise SweepInterrupted(self.signum)

    @contextmanager
    def deferred(self):
        """Inside, the first signal only sets `requested`; leaving raises SweepInterrupted if it came."""
        self._deferred = True
        try:
            yield self
        finally:
            self._deferred = False
        if self.signum is not None:
            raise SweepInterrupted(self.signum)


def make_stopper(interruption: Interruption):
    """A Tune stopper that ends the experiment once the driver was asked to stop."""
    from ray.tune import Stopper

    class SignalStopper(Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return interruption.requested

    return SignalStopper()
