"""The spec's `budget:` (GPU-hours and/or CPU-hours): the sweep starts no trial whose planned cost would
cross it. Spent is what the run directory's finished trials held (orchestrator.tracking.cost); a running
trial counts its planned cost until it ends. A trial's planned cost is, for GPU-hours, the planner's
estimate of its cell (`--plan`) where there is one, else (and always for CPU-hours) the mean of what the
sweep's finished trials held (its own cell's where it has some); before the first trial ends there is
no measure, and one trial at a time starts until one has ended."""

from __future__ import annotations

from orchestrator.tracking.cost import SweepCosts

UNITS = {"gpu_hours": "GPU-hours", "cpu_hours": "CPU-hours"}


class Budget:
    def __init__(self, spec_budget, costs: SweepCosts, store):
        self.limits = {k: v for k, v in (("gpu_hours", spec_budget.gpu_hours),
                                         ("cpu_hours", spec_budget.cpu_hours)) if v is not None}
        self.costs, self.store = costs, store
        self.stopped: str | None = None   # why it stopped the sweep, once it has

    def spent(self) -> dict[str, float]:
        """Held by every trial of the run directory that ended (this run's and earlier runs')."""
        out = {k: 0.0 for k in self.limits}
        for r in self._ended():
            cost = self._cost(r)
            for k in out:
                out[k] += cost.get(k) or 0.0
        return out

    def planned(self, cell: str, unit: str) -> float | None:
        if unit == "gpu_hours":
            planned = self.costs.prices(cell).planned_gpu_hours
            if planned is not None:
                return planned
        ended = [(r.cell, self._cost(r).get(unit)) for r in self._ended() if r.status == "done"]
        mine = [v for c, v in ended if c == cell and v is not None]
        every = [v for _, v in ended if v is not None]
        values = mine or every
        return sum(values) / len(values) if values else None

    def allows(self, next_cells: list[str], running_cells: list[str]) -> bool:
        """Whether a trial of any of `next_cells` (the most costly counts) may start beside the running
        ones; False records why in `stopped`."""
        spent = self.spent()
        for unit, limit in self.limits.items():
            running = sum(self.planned(c, unit) or 0.0 for c in running_cells)
            nxt = max((self.planned(c, unit) or 0.0) for c in next_cells)
            if spent[unit] + running + nxt > limit:
                self.stopped = (f"budget of {limit:g} {UNITS[unit]} reached: {spent[unit]:.4g} spent, "
                                f"{running:.4g} planned for the {len(running_cells)} running trial(s), and the "
                                f"next trial is planned at {nxt:.4g}")
                return False
        return True

    def unmeasured(self, cells: list[str]) -> bool:
        """Whether no trial of these cells has a planned cost yet (none planned, none ended)."""
        return any(self.planned(c, unit) is None for c in cells for unit in self.limits)

    def describe(self) -> str:
        return " and ".join(f"{v:g} {UNITS[k]}" for k, v in self.limits.items())

    def _ended(self):
        return [r for r in self.store.trial_records() if r.status in ("done", "error")]

    def _cost(self, record) -> dict:
        if record.gpu_hours is not None and record.cpu_hours is not None:
            return {"gpu_hours": record.gpu_hours, "cpu_hours": record.cpu_hours}
        return self.costs.of(record)
