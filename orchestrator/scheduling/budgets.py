"""GPU budgets: per node type that trains trials, the GPUs its trials may hold at once, and how many
trials those budgets hold."""

from __future__ import annotations

import math

from orchestrator.scheduling.placement import FreeCapacity
from orchestrator.scheduling.plan import CellPlan, GpuBudget, ScorerPlan


def gpu_budgets(capacity: FreeCapacity, scorers: list[ScorerPlan], cells: list[CellPlan]) -> dict[str, GpuBudget]:
    """What a node type has at its largest, less the always-on scorers' GPUs (already placed in
    `capacity`), less a reserve for the largest scale-to-zero replica that a finished trial's own freed
    GPUs there cannot hold (a model trained on another type, or on fewer GPUs than its replica).
    Without the reserve, trials filling the type would leave such a trial waiting, for as long as a
    trial there runs, for its score. `reserved_for` names the cells whose scores need the reserve: once
    they are done, trials may hold `trial_gpus_once_scored`. Neither exceeds the type's useful_gpus."""
    free = capacity.free_gpus()
    reserve = {name: 0.0 for name in free}
    needing: dict[str, list[str]] = {name: [] for name in free}
    for s in scorers:
        if not s.scales_to_zero or s.node_type is None or s.problem:
            continue
        own = [c for c in cells if c.model == s.model]
        if not all(c.training.node_type == s.node_type and c.training_gpus >= s.replica_gpus for c in own):
            reserve[s.node_type] = max(reserve[s.node_type], s.replica_gpus)
            needing[s.node_type] += [c.cell for c in own]
    trains = {c.training.node_type for c in cells}
    useful = useful_gpus(capacity, cells)
    budgets = {}
    for name in (n for n in free if n in trains):
        once_scored = min(free[name], useful.get(name, math.inf))
        budgets[name] = GpuBudget(trial_gpus=min(max(0.0, free[name] - reserve[name]), once_scored),
                                  trial_gpus_once_scored=once_scored, reserved_for_scorers=reserve[name],
                                  reserved_for=needing[name], useful_gpus=useful.get(name))
    return budgets


def useful_gpus(capacity: FreeCapacity, cells: list[CellPlan]) -> dict[str, float]:
    """Per node type, the GPUs of the whole nodes that do its trials' work by the sweep's shortest
    possible length (its longest trial, or a type's work over all of that type's GPUs), to the nearest
    whole node. More nodes would end the sweep no sooner and sit mostly idle beside its longest trials
    (the scale simulation measured it: three long trials spread over two A10G nodes kept both up with
    one or two of four GPUs busy). Node types with a trial of unknown cost are not limited."""
    work: dict[str, float] = {}
    longest: dict[str, float] = {}
    for c in cells:
        name = c.training.node_type
        if c.hours_per_trial is None:
            work[name] = math.inf
            continue
        work[name] = work.get(name, 0.0) + c.trials * c.gpu_hours_per_trial
        longest[name] = max(longest.get(name, 0.0), c.hours_per_trial)
    costed = {name: w for name, w in work.items() if math.isfinite(w) and w > 0}
    spread = [w / (capacity.types[name].gpus * capacity.types[name].count) for name, w in costed.items()]
    horizon = max([*longest.values(), *spread], default=0.0)
    out = {}
    for name, w in costed.items():
        node = capacity.types[name]
        nodes = min(node.count, max(1, round(w / horizon / node.gpus)))
        largest = max(c.training_gpus for c in cells if c.training.node_type == name)
        out[name] = float(max(nodes * node.gpus, largest))
    return out


def budgets_hold(budgets: dict[str, GpuBudget], cells: list[CellPlan]) -> int | None:
    """How many trials the node types' budgets hold at once, each running its smallest trials (the
    searcher keeps each type within its budget, so Tune's global limit must not bind first). None
    when a cell's trials hold no GPU: CPUs bound those (placement.pack_trials)."""
    smallest: dict[str, float] = {}
    for c in cells:
        if not c.training_gpus:
            return None
        name = c.training.node_type
        smallest[name] = min(c.training_gpus, smallest.get(name, c.training_gpus))
    if not smallest:
        return None
    return sum(max(1, int(budgets[name].trial_gpus // gpus)) for name, gpus in smallest.items())
