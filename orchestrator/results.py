"""A sweep's results as pandas DataFrames, from a finished or a still-running sweep.

    import orchestrator.results as r
    r.trials("results/local")     # one row per trial
    r.pareto("results/local")     # the non-dominated trials of each (model, method) cell
    r.baselines("results/local")  # one row per base model: its scores before tuning
    r.progress("results/local")   # one row per cell: trials done, running, failed, time per trial, ETA

From a terminal, mid-sweep or after (`--csv` / `--json` give the same data; `--report` rewrites
<run>/pareto/index.html):

    python -m orchestrator.results results/local [--csv | --json | --report]

Columns of `trials` (and `pareto`, which adds none):
    key, cell, model, model_ref, method, lr, mix, status ("running" | "done" | "error"),
    one column per objective (e.g. calibration_error, capability_loss) and its standard error
    (`<objective>_se`, NaN where the metric has none),
    one column per evaluation metric (e.g. "fidelity/tv", "fidelity/w1_rel", "arithmetic/flexible_acc"),
    "train/<metric>" for training metrics (e.g. train/loss, train/replay_fraction),
    adapter_dir, train_wall_s, eval_wall_s, error.
`baselines` has model, model_ref and the same evaluation-metric columns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.store import RunStore, jsonable

BASE_COLUMNS = ["key", "cell", "model", "model_ref", "method", "lr", "mix", "status"]
TAIL_COLUMNS = ["adapter_dir", "train_wall_s", "eval_wall_s", "error"]


def _spec(path):
    """The SweepSpec the run directory holds; FileNotFoundError if it holds none."""
    spec = RunStore(path).saved_spec()
    if spec is None:
        raise FileNotFoundError(f"{path} holds no sweep (no spec.json)")
    return spec


def trials(path: str | Path) -> pd.DataFrame:
    objectives = [o.name for o in _spec(path).objectives]
    rows = []
    for rec in RunStore(path).trial_records():
        row = {k: getattr(rec, k) for k in BASE_COLUMNS + TAIL_COLUMNS}
        for o in objectives:
            row[o], row[f"{o}_se"] = rec.objectives.get(o), rec.objective_se.get(o)
        row.update(rec.metrics)
        row.update({f"train/{k}": v for k, v in rec.train_metrics.items() if isinstance(v, (int, float))})
        rows.append(row)
    columns = BASE_COLUMNS + [c for o in objectives for c in (o, f"{o}_se")]
    frame = pd.DataFrame(rows, columns=None if rows else columns + TAIL_COLUMNS)
    for o in objectives:
        frame[f"{o}_se"] = pd.to_numeric(frame[f"{o}_se"])   # None (no error known) -> NaN
    rest = [c for c in frame.columns if c not in columns + TAIL_COLUMNS]
    return frame[columns + sorted(rest) + TAIL_COLUMNS].reset_index(drop=True)


def pareto_mask(values: np.ndarray, modes: list[str]) -> np.ndarray:
    """True for rows no other row dominates (<= on every objective and < on one, after orienting
    every objective to minimisation)."""
    signed = np.asarray(values, dtype=float) * np.array([1.0 if m == "min" else -1.0 for m in modes])
    keep = np.ones(len(signed), dtype=bool)
    for i, row in enumerate(signed):
        dominated_by = np.all(signed <= row, axis=1) & np.any(signed < row, axis=1)
        keep[i] = not dominated_by.any()
    return keep


def pareto(path: str | Path) -> pd.DataFrame:
    objectives = _spec(path).objectives
    names = [o.name for o in objectives]
    frame = trials(path)
    done = frame[frame["status"] == "done"].dropna(subset=names)
    modes = [o.mode for o in objectives]
    fronts = [cell[pareto_mask(cell[names].to_numpy(), modes)].sort_values(names[0])
              for _, cell in done.groupby("cell", sort=True)]
    if not fronts:
        return frame.iloc[0:0]
    return pd.concat(fronts).reset_index(drop=True)


def baselines(path: str | Path) -> pd.DataFrame:
    data = RunStore(path).baselines()
    rows = [{"model": label, "model_ref": entry.get("model_ref"), **entry.get("metrics", {})}
            for label, entry in sorted(data.items())]
    return pd.DataFrame(rows, columns=None if rows else ["model", "model_ref"])


PROGRESS_COLUMNS = ["cell", "planned", "done", "running", "failed", "interrupted", "pending", "s_per_trial",
                    "eta_s"]


def progress(path: str | Path) -> pd.DataFrame:
    """One row per cell of the spec: its planned trials; how many are done, running, failed and
    interrupted (those run again on resume); how many have not started (pending); the mean wall time
    of its finished trials (s_per_trial, NaN before the first) and the time its unfinished trials still
    take one after another at that pace (eta_s, less what the running ones have spent already)."""
    spec = _spec(path)
    records = RunStore(path).trial_records()
    now, rows = time.time(), []
    for model, method in spec.cells:
        cell = f"{model.label}:{method}"
        mine = [r for r in records if r.cell == cell]
        count = {s: sum(r.status == s for r in mine) for s in ("done", "running", "error", "interrupted")}
        took = [r.finished_at - r.started_at for r in mine if r.status == "done" and r.finished_at]
        pace = float(np.mean(took)) if took else float("nan")
        left = max(0, spec.trials_per_cell - count["done"] - count["error"])
        spent = sum(min(now - r.started_at, pace) for r in mine if r.status == "running") if took else 0.0
        rows.append({"cell": cell, "planned": spec.trials_per_cell, "done": count["done"],
                     "running": count["running"], "failed": count["error"], "interrupted": count["interrupted"],
                     "pending": max(0, left - count["running"] - count["interrupted"]), "s_per_trial": pace,
                     "eta_s": left * pace - spent if took else (0.0 if left == 0 else float("nan"))})
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


def sweep_state(path: str | Path) -> str:
    """"running (<who>)" while a live driver holds the run directory, else "not running"."""
    from orchestrator.lock import describe, holder_is_alive, read_holder

    holder = read_holder(Path(path).expanduser().resolve())
    return f"running ({describe(holder)})" if holder and holder_is_alive(holder) else "not running"


def summary(path: str | Path) -> dict:
    """Everything the terminal view shows, as plain data: the sweep, its cells' progress and each
    cell's current Pareto front (objectives with their standard errors)."""
    spec = _spec(path)
    names = [o.name for o in spec.objectives]
    cells, front = progress(path), pareto(path)
    shown = ["key", "lr", "mix"] + [c for o in names for c in (o, f"{o}_se")]
    out = [{**jsonable(row), "front": jsonable(front[front["cell"] == row["cell"]][shown].to_dict("records"))}
           for row in cells.to_dict("records")]
    running = cells["running"].sum()
    total_eta = cells["eta_s"].sum(min_count=1) / max(1, running)
    return {"run_dir": str(Path(path).expanduser().resolve()), "sweep": spec.name, "state": sweep_state(path),
            "objectives": names, "eta_s": jsonable(total_eta), "cells": out}


def duration(seconds) -> str:
    """1h05m, 3m07s, or ? where unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def _value(v, se) -> str:
    if v is None:
        return "-"
    return f"{v:.4g} ± {se:.2g}" if se is not None else f"{v:.4g}"


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
                 *(_value(p[o], p[f"{o}_se"]) for o in data["objectives"])] for p in c["front"]]
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.results",
                                description="A sweep's progress and current Pareto fronts, mid-sweep or after.")
    p.add_argument("run_dir", help="the sweep's run directory (<storage>/<name>)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print one CSV row per Pareto point with its cell's progress")
    fmt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    fmt.add_argument("--report", action="store_true", help="(re)write <run_dir>/pareto/index.html and say where")
    args = p.parse_args(argv)
    try:
        data = summary(args.run_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, indent=1))
    elif args.csv:
        summary_frame(data).to_csv(sys.stdout, index=False)
    elif args.report:
        from orchestrator.report import write_report

        write_report(args.run_dir)
        print(Path(args.run_dir).expanduser().resolve() / "pareto" / "index.html")
    else:
        print(format_summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
