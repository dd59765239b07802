"""The searcher's gate: which cells may start a trial now, so each node type stays within its GPU
budget (the Plan's), and in which order (the most expected GPU-hours first, so the sweep ends on small
trials rather than on a long one running alone). Trials waiting for a full node type would otherwise
take Tune's concurrency slots from another. Without loads (the embedded cluster, one node type) every
cell may start and the searcher goes round robin."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from orchestrator.cells import Cell
from orchestrator.scheduling.plan import Plan


@dataclass(frozen=True)
class CellLoad:
    """What one trial of a cell holds while it trains, as the Plan sees it."""
    node_type: str | None = None   # where its training lands; None: not known, not limited
    gpus: float = 0.0              # GPUs one trial trains on
    hours: float = 0.0             # its expected wall hours (0: not costed)
    scorer_node_type: str | None = None   # where its scorer replicas land
    scorer_gpus: float = 0.0              # GPUs one of those replicas holds


@dataclass(frozen=True)
class ScorerReserve:
    """GPUs a node type keeps for scorer replicas while any of `cells` has a trial to run or score."""
    gpus: float
    cells: frozenset[Cell]


class GpuAdmission:
    """`budgets`: node type -> GPUs its trials may hold at once. `scorer_replicas` (model label ->
    replicas up now, for scorers that scale to zero) keeps a replica's GPUs counted while it lingers
    after its last score: a trial handed those GPUs would wait for them, and the autoscaler, seeing it
    wait, would start a node the budget has no work for."""

    def __init__(self, loads: Mapping[Cell, CellLoad] | None = None, budgets: Mapping[str, float] | None = None,
                 reserves: Mapping[str, ScorerReserve] | None = None,
                 scorer_replicas: Callable[[], dict[str, int]] = dict):
        self.loads, self.budgets = dict(loads or {}), dict(budgets or {})
        self.reserves, self.scorer_replicas = dict(reserves or {}), scorer_replicas
        self.live: dict[str, Cell] = {}   # trial id -> its cell
        self.scoring: set[str] = set()    # live trials done training, their GPUs given back
        self.remaining: Mapping[Cell, int] = {}

    @classmethod
    def from_plan(cls, plan: Plan | None, cells: Collection[Cell],
                  scorer_replicas: Callable[[], dict[str, int]] = dict) -> GpuAdmission:
        if plan is None:
            return cls(scorer_replicas=scorer_replicas)
        by_name = {c.name: c for c in cells}
        loads = {by_name[c.cell]: CellLoad(c.training.node_type, c.training_gpus, c.hours_per_trial or 0.0,
                                           c.scoring.node_type, c.scoring.replica_gpus)
                 for c in plan.cells if c.fits and c.cell in by_name}
        reserves = {name: ScorerReserve(b.trial_gpus_once_scored - b.trial_gpus,
                                        frozenset(by_name[n] for n in b.reserved_for if n in by_name))
                    for name, b in plan.budgets.items() if b.trial_gpus_once_scored > b.trial_gpus}
        return cls(loads, {name: b.trial_gpus for name, b in plan.budgets.items()}, reserves, scorer_replicas)

    def load(self, cell: Cell) -> CellLoad:
        return self.loads.get(cell, CellLoad())

    def start(self, trial_id: str, cell: Cell) -> None:
        self.live[trial_id] = cell

    def trained(self, trial_id: str) -> None:
        """The trial is done training: its GPUs go to the next trial while it waits for its score, but
        for its scorer replica's where that lands on the same node type (gpus_in_use)."""
        if trial_id in self.live:
            self.scoring.add(trial_id)

    def end(self, trial_id: str) -> None:
        self.live.pop(trial_id, None)
        self.scoring.discard(trial_id)

    def ready(self, open_cells: list[Cell], priority: Callable[[Cell], tuple]) -> list[Cell]:
        return [c for c in open_cells if self.has_room(c) and not self.waits_behind(c, open_cells, priority)]

    def waits_behind(self, cell: Cell, open_cells: list[Cell], priority: Callable[[Cell], tuple]) -> bool:
        """Whether a cell ahead of this one on its node type waits only for scorer replicas there, busy
        scoring (minutes) or idle (within their release delay): their GPUs are kept for it, not handed
        to a smaller trial that would hold them for hours while the larger one waits for a whole set of
        free GPUs. (Without waiting for the busy ones, the scale simulation's last 4-GPU trial started
        after every 2-GPU trial, which took each gap a score left, and ran alone for 2.4 hours.)"""
        node_type = self.load(cell).node_type
        return node_type is not None and any(
            self.load(c).node_type == node_type and priority(c) < priority(cell)
            and not self.has_room(c) and self.has_room(c, count_scorers=False) for c in open_cells)

    def gpus_in_use(self, node_type: str, count_scorers: bool = True) -> float:
        """GPUs the node type's trials and scorers hold: a training trial its own; a model trained and
        scored on this type, its scorer replicas: one while trials wait for their scores (the GPUs a
        trial freed are where its replica starts; a new trial takes the rest), and as many as are up
        (scorer_replicas), which covers a replica lingering after its last score."""
        training = sum(self.load(c).gpus for t, c in self.live.items()
                       if self.load(c).node_type == node_type and t not in self.scoring)
        if not count_scorers:
            return training
        waiting = {c.model for t, c in self.live.items() if t in self.scoring}
        up = self.scorer_replicas()
        scorers = {c.model: max(int(c.model in waiting), up.get(c.model, 0)) * load.scorer_gpus
                   for c, load in self.loads.items() if load.node_type == node_type == load.scorer_node_type}
        return training + sum(scorers.values())

    def has_room(self, cell: Cell, count_scorers: bool = True) -> bool:
        """Whether the cell's node type has GPUs for one more of its trials. A node type with nothing
        live always takes one, so a trial larger than its budget still runs."""
        load = self.load(cell)
        budget = self.budget(load.node_type) if load.node_type else None
        if budget is None:
            return True
        used = self.gpus_in_use(load.node_type, count_scorers)
        return used == 0 or used + load.gpus <= budget + 1e-9

    def budget(self, node_type: str) -> float | None:
        """GPUs the node type's trials may hold now: its budget, and its scorers' reserve once no cell
        that needs it has a trial to run or being run."""
        if node_type not in self.budgets:
            return None
        reserve = self.reserves.get(node_type, ScorerReserve(0.0, frozenset()))
        live = set(self.live.values())
        in_need = any(self.remaining.get(c, 0) > 0 or c in live for c in reserve.cells)
        return self.budgets[node_type] + (0.0 if in_need else reserve.gpus)
