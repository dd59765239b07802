"""A sweep's results as pandas DataFrames, from a finished or a still-running sweep.

    import orchestrator.results as r
    r.trials("results/local")     # one row per trial
    r.pareto("results/local")     # the non-dominated trials of each (model, method) cell
    r.baselines("results/local")  # one row per base model: its scores before tuning

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

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.store import RunStore

BASE_COLUMNS = ["key", "cell", "model", "model_ref", "method", "lr", "mix", "status"]
TAIL_COLUMNS = ["adapter_dir", "train_wall_s", "eval_wall_s", "error"]


def _objectives(path) -> list[tuple[str, str]]:
    spec = RunStore(path).saved_spec()
    if spec is None:
        raise FileNotFoundError(f"{path} holds no sweep (no spec.json)")
    return [(o.name, o.mode) for o in spec.objectives]


def trials(path: str | Path) -> pd.DataFrame:
    objectives = [name for name, _ in _objectives(path)]
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
    objectives = _objectives(path)
    names = [n for n, _ in objectives]
    frame = trials(path)
    done = frame[frame["status"] == "done"].dropna(subset=names)
    fronts = []
    for _, cell in done.groupby("cell", sort=True):
        mask = pareto_mask(cell[names].to_numpy(), [m for _, m in objectives])
        fronts.append(cell[mask].sort_values(names[0]))
    if not fronts:
        return frame.iloc[0:0]
    return pd.concat(fronts).reset_index(drop=True)


def baselines(path: str | Path) -> pd.DataFrame:
    data = RunStore(path).baselines()
    rows = [{"model": label, "model_ref": entry.get("model_ref"), **entry.get("metrics", {})}
            for label, entry in sorted(data.items())]
    return pd.DataFrame(rows, columns=None if rows else ["model", "model_ref"])
