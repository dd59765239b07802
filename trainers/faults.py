"""Fault injection for tests: `CFT_TRAIN_FAULT="<step>:<rank>"` kills that worker once, after that step;
`CFT_TRAIN_FAULT="<step>:<rank>:nan"` makes that worker's loss NaN at that step (a diverged run).

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
    kind: str = "kill"   # or "nan"

    @classmethod
    def from_env(cls, marker: str) -> "Fault | None":
        spec = os.environ.get(ENV_VAR)
        if not spec:
            return None
        parts = spec.split(":")
        try:
            step, rank = int(parts[0]), int(parts[1])
            kind = parts[2] if len(parts) == 3 else "kill"
            if len(parts) > 3 or kind not in ("kill", "nan"):
                raise ValueError(kind)
        except (ValueError, IndexError) as e:
            raise ValueError(f"{ENV_VAR} must look like '<step>:<rank>[:nan]' (got {spec!r})") from e
        return cls(step, rank, marker, kind)

    def poisons(self, step: int, rank: int) -> bool:
        """Whether this worker's loss at `step` (1-based) is to be NaN."""
        return self.kind == "nan" and step == self.step and rank == self.rank

    def maybe_fire(self, step: int, rank: int) -> None:
        if self.kind != "kill" or step != self.step or rank != self.rank or os.path.exists(self.marker):
            return
        os.makedirs(os.path.dirname(self.marker), exist_ok=True)
        open(self.marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
