"""Placement on the largest cluster: the free CPUs and GPUs of every node, the node types a shape can
run on, and how many trials fit at once next to the scorers (filled in the searcher's order)."""

from __future__ import annotations

import math

from orchestrator.scheduling.nodes import NodeType
from orchestrator.scheduling.shapes import Shape


class FreeCapacity:
    """The free GPUs and CPUs of every node of the largest cluster, per node type."""

    def __init__(self, node_types: list[NodeType]):
        self.types = {t.name: t for t in node_types}
        self.free = {t.name: [[float(t.gpus), t.cpus if t.cpus is not None else math.inf] for _ in range(t.count)]
                     for t in node_types}

    def copy(self) -> FreeCapacity:
        other = FreeCapacity([])
        other.types, other.free = self.types, {k: [list(n) for n in v] for k, v in self.free.items()}
        return other

    def free_gpus(self) -> dict[str, float]:
        return {name: sum(gpus for gpus, _ in nodes) for name, nodes in self.free.items()}

    def place(self, shape: Shape, candidates: list[NodeType]) -> str | None:
        """Place all of a shape's bundles on one node type (the first candidate with room); return it."""
        for node_type in candidates:
            nodes = [list(n) for n in self.free[node_type.name]]
            order = sorted(range(len(nodes)), key=lambda i: nodes[i][0])   # fullest first: Ray's PACK
            placed = 0
            for i in order:
                while placed < shape.bundles and nodes[i][0] >= shape.gpus and nodes[i][1] >= shape.cpus:
                    nodes[i][0] -= shape.gpus
                    nodes[i][1] -= shape.cpus
                    placed += 1
            if placed == shape.bundles:
                self.free[node_type.name] = nodes
                return node_type.name
        return None


def candidates(shape: Shape, node_types: list[NodeType]) -> tuple[list[NodeType], dict[str, str]]:
    """The node types a shape can run on, smallest GPUs first, and why each other one cannot."""
    fit, why = [], {}
    for t in node_types:
        reason = shape.why_not(t)
        if reason:
            why[t.name] = reason
        else:
            fit.append(t)
    fit.sort(key=lambda t: (t.gpu_gib or 0.0, t.gpus, t.name) if shape.gpus else (-(t.cpus or 0.0), t.name))
    return fit, why


def why_text(why: dict[str, str]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in why.items()) or "the cluster has no node types"


def pack_trials(trials_per_cell: int, capacity: FreeCapacity, trial_shapes: dict[str, Shape],
                node_types: list[NodeType]) -> int:
    """How many trials the largest cluster holds at once next to the scorers, filled in the searcher's
    order (the cell with the fewest started trials next, by name)."""
    capacity = capacity.copy()
    started = {name: 0 for name in trial_shapes}
    fits = {name: candidates(trial_shapes[name], node_types)[0] for name in started}
    while True:
        open_cells = [n for n in started if started[n] < trials_per_cell and fits[n]]
        if not open_cells:
            return sum(started.values())
        name = min(open_cells, key=lambda n: (started[n], n))
        if capacity.place(trial_shapes[name], fits[name]) is None:
            fits[name] = []   # full for this cell's shape: try the others
        else:
            started[name] += 1
