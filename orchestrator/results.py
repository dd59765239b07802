"""A sweep's results as pandas DataFrames, from a finished or a still-running sweep.

    import orchestrator.results as r
    r.trials("results/local")     # one row per trial
    r.pareto("results/local")     # the non-dominated trials of each (model, method) cell
    r.baselines("results/local")  # one row per base model: its scores before tuning
    r.progress("results/local")   # one row per cell: trials done, running, failed, time per trial, ETA
    r.paper_table("results/local")  # the paper's metrics: base model and front trials, per cell and split
    r.trial_rows("results/local", "sampled")   # every trial's per-prompt rows of one evaluation

From a terminal, mid-sweep or after (`--csv` / `--json` give the same data; `--report` rewrites
<run>/pareto/index.html):

    python -m orchestrator.results results/local [--csv | --json | --report]
    python -m orchestrator.results results/local --paper [--csv | --json]   # the paper's tables

Columns of `trials` (and `pareto`, which adds none):
    key, cell, model, model_ref, method, lr, mix, status ("running" | "done" | "error"),
    one column per objective (e.g. calibration_error, capability_loss) and its standard error
    (`<objective>_se`, NaN where the metric has none),
    one column per evaluation metric (e.g. "fidelity/tv", "fidelity/w1_rel", "arithmetic/flexible_acc"),
    "train/<metric>" for training metrics (e.g. train/loss, train/replay_fraction),
    adapter_dir, train_wall_s, eval_wall_s,
    gpu_hours, cpu_hours (what the trial held, training and scored), planned_gpu_hours (the planner's
    estimate, `--plan`), dollars, train_gpu_s, train_cpu_s, eval_gpu_s, eval_cpu_s (orchestrator.tracking.cost),
    error.
`costs` has one row per cell and a "total" row: trials, gpu_hours, planned_gpu_hours, cpu_hours, dollars.
`baselines` has model, model_ref and the same evaluation-metric columns.
`paper_table` has cell, split, trial ("base model" or a front trial's key), lr, mix and the paper's
metrics each beside its standard error: w1, valid_rate, support_violation_rate, mean_error,
variance_error, gof_pass (docs/method.md, "Comparing with the paper").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from orchestrator.frames import (PAPER_COLUMNS, PAPER_METRICS, PROGRESS_COLUMNS, baselines, duration, paper_table,
                                 pareto, pareto_mask, progress, spec_of, sweep_state, trial_rows, trials, with_se)
from orchestrator.store import jsonable

__all__ = ["trials", "pareto", "pareto_mask", "baselines", "progress", "sweep_state", "duration", "summary",
           "summary_frame", "format_summary", "PROGRESS_COLUMNS", "paper_table", "format_paper", "trial_rows",
           "PAPER_METRICS", "PAPER_COLUMNS", "costs", "trial_costs", "format_costs"]

# how the paper's tables head each metric
PAPER_HEADERS = {"w1": "W1", "valid_rate": "valid", "support_violation_rate": "support viol.",
                 "mean_error": "mean err.", "variance_error": "var. err.", "gof_pass": "GoF pass"}

def summary(path: str | Path) -> dict:
    """Everything the terminal view shows, as plain data: the sweep, its cells' progress and each
    cell's current Pareto front (objectives with their standard errors)."""
    spec = spec_of(path)
    names = [o.name for o in spec.objectives]
    cells, front = progress(path), pareto(path)
    shown = ["key", "lr", "mix"] + [c for o in names for c in (o, f"{o}_se")]
    out = [{**jsonable(row), "front": jsonable(front[front["cell"] == row["cell"]][shown].to_dict("records"))}
           for row in cells.to_dict("records")]
    running = cells["running"].sum()
    total_eta = cells["eta_s"].sum(min_count=1) / max(1, running)
    return {"run_dir": str(Path(path).expanduser().resolve()), "sweep": spec.name, "state": sweep_state(path),
            "objectives": names, "eta_s": jsonable(total_eta), "cells": out}


def costs(path: str | Path) -> pd.DataFrame:
    """One row per cell and a last row "total": the trials that ended (done or failed), the GPU-hours and
    CPU-hours they held, the GPU-hours the planner estimated for the same trials (NaN where it planned
    none: the embedded cluster) and their dollars (NaN where no instance price is known)."""
    from orchestrator.tracking.cost import cost_table

    return cost_table(trials(path))


def trial_costs(path: str | Path) -> list[dict]:
    """Every trial's held GPU- and CPU-hours beside the planner's estimate and its dollars."""
    frame = trials(path)
    shown = ["key", "cell", "status", "gpu_hours", "cpu_hours", "planned_gpu_hours", "dollars"]
    return jsonable(frame[[c for c in shown if c in frame]].to_dict("records"))


def format_costs(frame: pd.DataFrame) -> str:
    """The cost table as the terminal shows it ("-" where nothing was planned or priced)."""
    shown = frame.rename(columns={"gpu_hours": "GPU-h held", "planned_gpu_hours": "GPU-h planned",
                                  "cpu_hours": "CPU-h held"})
    return ("Cost (held: resources x time held; planned: the planner's estimate for the same trials):\n"
            + shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))


def format_summary(data: dict) -> str:
    """The terminal view of `summary`."""
    lines = [f"Sweep {data['sweep']!r} in {data['run_dir']}: {data['state']}; "
             f"ETA {duration(data['eta_s'])} at the current pace and concurrency"]
    for c in data["cells"]:
        lines.append(f"\n{c['cell']}: {c['done']}/{c['planned']} done, {c['running']} running, {c['failed']} failed"
                     + (f", {c['interrupted']} interrupted" if c["interrupted"] else "")
                     + f", {c['pending']} pending; {duration(c['s_per_trial'])} per trial, "
                       f"ETA {duration(c['eta_s'])}")
        if not c["front"]:
            lines.append("  Pareto front: (no finished trial yet)")
            continue
        lines.append("  Pareto front:")
        header = ["key", "lr", "mix", *data["objectives"]]
        rows = [[p["key"], f"{p['lr']:.3g}", f"{p['mix']:.3f}",
                 *(with_se(p[o], p[f"{o}_se"]) for o in data["objectives"])] for p in c["front"]]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def summary_frame(data: dict) -> pd.DataFrame:
    """`summary` as one flat table: a row per Pareto point with its cell's progress beside it (one row
    with empty point columns for a cell with no finished trial)."""
    rows = []
    for c in data["cells"]:
        cell = {k: v for k, v in c.items() if k != "front"}
        rows += [{**cell, **p} for p in c["front"]] or [cell]
    points = ["key", "lr", "mix"] + [x for o in data["objectives"] for x in (o, f"{o}_se")]
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS + points)


def format_paper(table: pd.DataFrame) -> str:
    """The terminal view of `paper_table`: a block per cell and split, value ± standard error."""
    if table.empty:
        return "(no paper metrics: the run has no sampled evaluation)"
    blocks = []
    for (cell, split), part in table.groupby(["cell", "split"], sort=False):
        shown = pd.DataFrame({
            "trial": part["trial"],
            "lr": [("" if pd.isna(v) else f"{v:.3g}") for v in part["lr"]],
            "mix": [("" if pd.isna(v) else f"{v:.3f}") for v in part["mix"]],
            **{PAPER_HEADERS[m]: [with_se(v, se) for v, se in zip(part[m], part[f"{m}_se"])] for m in PAPER_METRICS}})
        blocks.append(f"{cell}, {split}:\n" + shown.to_string(index=False))
    return "\n\n".join(blocks)


def _read(load, run_dir):
    """load(run_dir), or None after naming on stderr a path that holds no sweep."""
    try:
        return load(run_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.results",
                                description="A sweep's progress and current Pareto fronts, mid-sweep or after.")
    p.add_argument("run_dir", help="the sweep's run directory (<storage>/<name>)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per Pareto point with its cell's progress")
    fmt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    fmt.add_argument("--report", action="store_true", help="(re)write <run_dir>/pareto/index.html and say where")
    p.add_argument("--paper", action="store_true",
                   help="the paper's tables instead: per cell and split, the base model and each Pareto-front trial "
                        "in W1, valid rate, support-violation rate, mean and variance error and GoF pass rate, each "
                        "with its standard error (with --csv or --json: that table as CSV or a JSON list)")
    args = p.parse_args(argv)
    if args.paper:
        if args.report:
            p.error("--paper prints a table; --report writes the page (which shows it too)")
        table = _read(paper_table, args.run_dir)
        if table is None:
            return 2
        if args.json:
            print(json.dumps(jsonable(table.to_dict("records")), indent=1))
        elif args.csv:
            table.to_csv(sys.stdout, index=False)
        else:
            print(format_paper(table))
        return 0
    data = _read(summary, args.run_dir)
    if data is None:
        return 2
    if args.json:
        cost = costs(args.run_dir)
        data = {**data, "cost": jsonable(cost.to_dict("records")), "trials": trial_costs(args.run_dir)}
        print(json.dumps(data, indent=1))
    elif args.csv:
        summary_frame(data).to_csv(sys.stdout, index=False)
    elif args.report:
        from orchestrator.report import write_report

        write_report(args.run_dir)
        print(Path(args.run_dir).expanduser().resolve() / "pareto" / "index.html")
    else:
        print(format_summary(data))
        print("\n" + format_costs(costs(args.run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
