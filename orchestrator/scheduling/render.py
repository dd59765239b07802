"""The Plan as `--plan` prints it without `--json`."""

from __future__ import annotations

from orchestrator.scheduling.plan import CellPlan, Plan, ScorerPlan


def format_plan(plan: Plan) -> str:
    lines = [f"Sweep {plan.spec!r} on {plan.cluster} at its largest:"]
    lines += [f"  {t.summary}" for t in plan.node_types]
    lines.append("Scorer apps (replicas held for the whole sweep, or only while scoring: 'to zero'):")
    lines += [_scorer_line(s) for s in plan.scorers]
    lines.append("Cells (one trial's training):")
    lines += [_cell_line(c) for c in plan.cells]
    h = plan.gpu_hours
    lines.append(f"max_concurrent_trials: {plan.max_concurrent_trials} (the cluster holds "
                 f"{plan.cluster_holds_trials} trials at once next to the scorers"
                 f"{'; the spec sets it' if plan.concurrency_from == 'spec' else ''})")
    lines.append(f"GPU-hours (estimate): training {h.training}, scorers {h.scoring} ({h.scorer_gpus} always-on "
                 f"GPUs held for ~{h.sweep_hours} h; replicas that scale to zero are not counted), total {h.total}")
    lines += [f"note: {w}" for w in plan.warnings]
    return "\n".join(lines)


def _scorer_line(s: ScorerPlan) -> str:
    where = s.node_type or "-"
    to_zero = "  to zero" if s.scales_to_zero else ""
    gib = f"{s.gib_per_gpu:.1f} GiB/GPU" if s.gib_per_gpu is not None else "memory not checked"
    return (f"  {s.model:<16} {s.replicas} x {s.shape.split(' x ', 1)[1]:<44} on {where:<12} "
            f"{gib}{to_zero}{'  ' + s.problem if s.problem else ''}")


def _cell_line(c: CellPlan) -> str:
    t = c.training
    gib = "memory not checked" if t.gib_per_gpu is None else f"{t.gib_per_gpu:.1f} GiB/GPU"
    if t.gib_per_gpu is not None and t.gpu_gib:
        gib = f"{t.gib_per_gpu:.1f}/{t.gpu_gib:.1f} GiB/GPU"
    hours = f"{c.gpu_hours_per_trial:.2f} GPU-h/trial" if c.gpu_hours_per_trial is not None else ""
    return (f"  {c.cell:<20} {t.shape:<46} on {t.node_type or '-':<12} {gib:<22} "
            f"{'fits' if c.fits else 'UNPLACEABLE'}  {hours}")
