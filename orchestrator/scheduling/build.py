"""Making the Plan of a sweep (its SweepDemand) on a cluster.

Concurrency: scorer replicas are placed first (largest first, each on the smallest GPU that fits;
those that scale to zero, release_idle_after_s, are checked for fit but leave their GPUs to trials);
then trials are placed cell by cell in the searcher's round-robin order until no further trial fits.
That number is what Tune's max_concurrent_trials should be: trials beyond what is up now stay pending,
and their resource demand is what makes the autoscaler add nodes."""

from __future__ import annotations

from dataclasses import asdict

from orchestrator.gpu_catalog import ModelShape, model_shape
from orchestrator.scheduling import capacity, cost, shapes
from orchestrator.scheduling.budgets import budgets_hold, gpu_budgets
from orchestrator.scheduling.demand import CellDemand, ModelDemand, SweepDemand
from orchestrator.scheduling.nodes import NodeType, load_node_types, local_node_types
from orchestrator.scheduling.placement import FreeCapacity, candidates, pack_trials, why_text
from orchestrator.scheduling.plan import (CellPlan, GpuHours, ModelSize, NodeTypeRow, Plan, ScorerPlan,
                                          ScoringPlacement, TrainingPlacement, Unplaceable)

ASSUMPTIONS = {"train_seq_tokens": shapes.TRAIN_SEQ_TOKENS,
               "activation_bytes_per_token_layer_hidden": shapes.ACTIVATION_BYTES,
               "train_overhead_gib": shapes.TRAIN_OVERHEAD_GIB, "scorer_overhead_gib": shapes.SCORER_OVERHEAD_GIB,
               "vllm_gpu_fraction": shapes.VLLM_GPU_FRACTION, "train_mfu": cost.TRAIN_MFU,
               "train_flops_per_param_token": cost.TRAIN_FLOPS_PER_PARAM_TOKEN, "weights_dtype": "bf16"}


def plan_for(demand: SweepDemand, cluster_yaml: str | None = None) -> Plan:
    """The plan on a cluster-launcher YAML's cluster, or on this machine (the embedded local Ray)."""
    if cluster_yaml:
        node_types, warnings = load_node_types(cluster_yaml)
        return build_plan(demand, node_types, cluster_yaml, warnings)
    node_types = local_node_types(capacity.local_num_cpus(demand))
    plan = build_plan(demand, node_types, "this machine (the embedded local Ray)")
    if not demand.max_concurrent_trials:   # what the sweep computes on the embedded cluster it starts
        local = node_types[0]
        plan.max_concurrent_trials = capacity.concurrency_from_totals(demand, local.cpus, local.gpus)
    return plan


def build_plan(demand: SweepDemand, node_types: list[NodeType], cluster: str, warnings: list[str] | None = None) -> Plan:
    warnings = list(warnings or [])
    sizes = {m.label: model_shape(m.ref) for m in demand.models}
    warnings += size_warnings(demand, sizes)
    free = FreeCapacity(node_types)
    scorers = {m.label: place_scorer(m, sizes[m.label], node_types, free)
               for m in sorted(demand.models, key=lambda m: -m.scorer.replica_gpus)}
    cells, trial_shapes = [], {}
    for c in demand.cells:
        trial_shapes[c.name] = shapes.training_shape(c.training, sizes[c.model])
        cells.append(place_cell(demand, c, sizes[c.model], trial_shapes[c.name], scorers[c.model], node_types, free))
    placeable = [c for c in cells if c.fits]
    budgets = gpu_budgets(free, list(scorers.values()), placeable)
    holds = budgets_hold(budgets, placeable) or pack_trials(
        demand.trials_per_cell, free, {c.cell: trial_shapes[c.cell] for c in placeable}, node_types)
    concurrent = demand.max_concurrent_trials or holds
    return Plan(
        spec=demand.name, cluster=cluster,
        node_types=[NodeTypeRow(**asdict(t), summary=t.describe()) for t in node_types],
        models={label: None if s is None else ModelSize(params_b=s.params_b, source=s.source)
                for label, s in sizes.items()},
        scorers=[scorers[m.label] for m in demand.models], cells=cells, max_concurrent_trials=concurrent,
        cluster_holds_trials=holds, concurrency_from="spec" if demand.max_concurrent_trials else "cluster",
        pools=budgets, unplaceable=[Unplaceable(cell=c.cell, model=c.model, reason=c.problem) for c in cells if c.problem],
        gpu_hours=sweep_gpu_hours(cells, list(scorers.values()), concurrent), warnings=warnings,
        assumptions=ASSUMPTIONS)


def size_warnings(demand: SweepDemand, sizes: dict[str, ModelShape | None]) -> list[str]:
    out = []
    for m in demand.models:
        if sizes[m.label] is None:
            out.append(f"model {m.label}: size unknown ({m.ref}); memory not checked. Add it to "
                       "orchestrator/gpu_catalog.py MODELS, or use a ref naming its size (e.g. ...-7B)")
        elif sizes[m.label].source != "table":
            out.append(f"model {m.label}: {sizes[m.label].params_b:g}B parameters from {sizes[m.label].source}")
    return out


def place_scorer(model: ModelDemand, size: ModelShape | None, node_types: list[NodeType],
                 free: FreeCapacity) -> ScorerPlan:
    """Place a model's scorer replicas; always-on ones keep their GPUs in `free`."""
    engine = model.scorer
    shape = shapes.scorer_shape(engine, size, model.lora_rank)
    fit, why = candidates(shape, node_types)
    # a scorer that scales to zero holds GPUs only while trials wait for scores: trials fill them
    held = free if engine.release_idle_after_s is None else free.copy()
    landed = [held.place(shape, fit) for _ in range(engine.replicas)]
    problem = None if fit else f"its scorer fits no node type ({why_text(why)})"
    if fit and None in landed:
        problem = f"no room for its {engine.replicas} scorer replica(s) on {', '.join(t.name for t in fit)}"
    return ScorerPlan(model=model.label, replicas=engine.replicas, shape=shape.describe(),
                      node_type=next((n for n in landed if n), None), gib_per_gpu=shape.need_gib,
                      estimate_gib=shape.parts, problem=problem, gpus=engine.replicas * shape.gpus,
                      replica_gpus=shape.gpus, scales_to_zero=engine.release_idle_after_s is not None)


def place_cell(demand: SweepDemand, cell: CellDemand, size: ModelShape | None, shape: shapes.Shape,
               scorer: ScorerPlan, node_types: list[NodeType], free: FreeCapacity) -> CellPlan:
    """Where one of the cell's trials trains once the scorers hold their GPUs, and what it costs."""
    fit, why = candidates(shape, node_types)
    lands = free.copy().place(shape, fit)
    problems = [scorer.problem]
    if not fit:
        problems.append(f"its training fits no node type ({why_text(why)})")
    elif lands is None:
        problems.append(f"no room for one trial on {', '.join(t.name for t in fit)} once the scorers hold "
                        "their GPUs")
    problem = "; ".join(p for p in problems if p) or None
    node = next((t for t in fit if t.name == lands), fit[0] if fit else None)
    gpu_hours, hours = cost.trial_cost(demand.mix_mid, size, cell.training, node)
    return CellPlan(
        cell=cell.name, model=cell.model, method=cell.method, trials=demand.trials_per_cell,
        training=TrainingPlacement(shape=shape.describe(), node_type=lands, gib_per_gpu=shape.need_gib,
                                   gpu_gib=node.gpu_gib if node else None, estimate_gib=shape.parts),
        scoring=ScoringPlacement(shape=scorer.shape, node_type=scorer.node_type, gib_per_gpu=scorer.gib_per_gpu,
                                 replica_gpus=scorer.replica_gpus),
        training_gpus=shape.total_gpus, fits=problem is None, problem=problem,
        gpu_hours_per_trial=gpu_hours, hours_per_trial=hours)


def sweep_gpu_hours(cells: list[CellPlan], scorers: list[ScorerPlan], concurrent: int) -> GpuHours:
    costed = [c for c in cells if c.fits and c.gpu_hours_per_trial is not None]
    training = sum(c.trials * c.gpu_hours_per_trial for c in costed)
    wall = sum(c.trials * c.hours_per_trial for c in costed) / max(1, concurrent)
    # always-on replicas hold their GPUs for the whole sweep; those that scale to zero only while
    # scoring, whose work is not modelled
    scorer_gpus = sum(s.gpus for s in scorers if s.problem is None and not s.scales_to_zero)
    return GpuHours(training=round(training, 1), scoring=round(scorer_gpus * wall, 1),
                    total=round(training + scorer_gpus * wall, 1), sweep_hours=round(wall, 1),
                    scorer_gpus=scorer_gpus, cells_not_costed=[c.cell for c in cells if c not in costed])
