"""A sweep's records as pandas DataFrames (orchestrator.results documents the columns); read by the
results CLI and by the report alike."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.store import RunStore

BASE_COLUMNS = ["key", "cell", "model", "model_ref", "method", "lr", "mix", "status"]
# what each trial held (orchestrator.tracking.cost) and the planner's estimate beside it
COST_COLUMNS = ["gpu_hours", "cpu_hours", "planned_gpu_hours", "dollars", "train_gpu_s", "train_cpu_s",
                "eval_gpu_s", "eval_cpu_s"]
TAIL_COLUMNS = ["adapter_dir", "train_wall_s", "eval_wall_s", *COST_COLUMNS, "error"]


def spec_of(path):
    """The SweepSpec the run directory holds; FileNotFoundError if it holds none."""
    spec = RunStore(path).saved_spec()
    if spec is None:
        raise FileNotFoundError(f"{path} holds no sweep (no spec.json)")
    return spec


def trials(path: str | Path) -> pd.DataFrame:
    objectives = [o.name for o in spec_of(path).objectives]
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


def pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """True for rows no other row dominates (<= on every objective and < on one, after orienting
    every objective to minimisation)."""
    signed = np.asarray(values, dtype=float) * np.array([1.0 if d == "min" else -1.0 for d in directions])
    keep = np.ones(len(signed), dtype=bool)
    for i, row in enumerate(signed):
        dominated_by = np.all(signed <= row, axis=1) & np.any(signed < row, axis=1)
        keep[i] = not dominated_by.any()
    return keep


def pareto(path: str | Path) -> pd.DataFrame:
    objectives = spec_of(path).objectives
    names = [o.name for o in objectives]
    frame = trials(path)
    done = frame[frame["status"] == "done"].dropna(subset=names)
    directions = [o.direction for o in objectives]
    fronts = [cell[pareto_mask(cell[names].to_numpy(), directions)].sort_values(names[0])
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
    spec = spec_of(path)
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




def duration(seconds) -> str:
    """1h05m, 3m07s, or ? where unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def with_se(v, se) -> str:
    """A value and its standard error, as the terminal shows them ("-" where there is none)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g} ± {se:.2g}" if se is not None and not (isinstance(se, float) and math.isnan(se)) else f"{v:.4g}"
