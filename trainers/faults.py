"""Fault injection for tests: `CFT_TRAIN_FAULT="<step>:<rank>"` kills that worker once, after that step.

The driver reads the variable (Ray workers need not inherit it) and passes it to the workers with a
marker path; the marker makes the fault fire once, so the restarted group runs to the end.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

ENV_VAR = "CFT_TRAIN_FAULT"


@dataclass(frozen=True)
class Fault:
    step: int
    rank: int
    marker: str

    @classmethod
    def from_env(cls, marker: str) -> "Fault | None":
        spec = os.environ.get(ENV_VAR)
        if not spec:
            return None
        try:
            step, rank = (int(x) for x in spec.split(":"))
        except ValueError as e:
            raise ValueError(f"{ENV_VAR} must look like '<step>:<rank>' (got {spec!r})") from e
        return cls(step, rank, marker)

    def maybe_fire(self, step: int, rank: int) -> None:
        if step != self.step or rank != self.rank or os.path.exists(self.marker):
            return
        os.makedirs(os.path.dirname(self.marker), exist_ok=True)
        open(self.marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
