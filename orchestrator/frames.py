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


# The paper's sampled metrics (cft.metrics.SAMPLE_SUMMARY less the sweep's own calibration_error and
# w1_scaled), in the order its tables print them: raw W1 on valid samples, valid rate, support-violation
# rate, mean error, variance error, and the share of prompts whose KS / chi-square test passes at 0.05.
PAPER_METRICS = ("w1", "valid_rate", "support_violation_rate", "mean_error", "variance_error", "gof_pass")
PAPER_COLUMNS = ["cell", "split", "trial", "lr", "mix", *[c for m in PAPER_METRICS for c in (m, f"{m}_se")]]


def trial_rows(path: str | Path, evaluation: str | None = None) -> pd.DataFrame:
    """One row per evaluated item of every trial whose rows were saved (one evaluation's with
    `evaluation`, e.g. "sampled"): key, cell, model, method, lr, mix, evaluation, then the item's own
    fields (for "sampled": split, family, key of the prompt as `prompt`, w1, valid_rate, ...)."""
    store = RunStore(path)
    records = {r.key: r for r in store.trial_records()}
    frames = []
    for key in store.trial_rows_keys():
        rec = records.get(key)
        for name, items in store.trial_rows(key).items():
            if evaluation is not None and name != evaluation or not items:
                continue
            frame = pd.DataFrame(items).rename(columns={"key": "prompt"})
            ids = {"key": key, "cell": rec.cell if rec else None, "model": rec.model if rec else None,
                   "method": rec.method if rec else None, "lr": rec.lr if rec else None,
                   "mix": rec.mix if rec else None, "evaluation": name}
            frames.append(frame.assign(**ids)[[*ids, *frame.columns]])
    if not frames:
        return pd.DataFrame(columns=["key", "cell", "model", "method", "lr", "mix", "evaluation"])
    return pd.concat(frames, ignore_index=True)


def paper_table(path: str | Path) -> pd.DataFrame:
    """The paper's tables: per cell and evaluated split (test_unseen_params, test_ood_family, and
    test_interp_params where the run evaluated it), the base model's row then each Pareto-front trial's,
    in the paper's metrics from the sampled evaluation (`sampled/<split>/<metric>`), each beside its
    standard error (`<metric>_se`, NaN where the summary has none). Columns: PAPER_COLUMNS; `trial` is
    "base model" or the trial's key (lr and mix NaN for the base model). Empty if the run has no
    sampled evaluation."""
    spec = spec_of(path)
    if "sampled" not in spec.evaluation.evals:
        return pd.DataFrame(columns=PAPER_COLUMNS)
    base = {row["model"]: row for row in baselines(path).to_dict("records")}
    front = pareto(path)
    rows = []

    def metrics(source: dict, split: str) -> dict:
        out = {}
        for m in PAPER_METRICS:
            for name in (m, f"{m}_se"):
                value = source.get(f"sampled/{split}/{name}")
                out[name] = float("nan") if value is None else value
        return out

    for model, method in spec.cells:
        cell = f"{model.label}:{method}"
        points = front[front["cell"] == cell].to_dict("records") if not front.empty else []
        for split in spec.evaluation.splits:
            baseline = base.get(model.label)
            rows.append({"cell": cell, "split": split, "trial": "base model", "lr": float("nan"),
                         "mix": float("nan"), **metrics(baseline or {}, split)})
            rows += [{"cell": cell, "split": split, "trial": p["key"], "lr": p["lr"], "mix": p["mix"],
                      **metrics(p, split)} for p in points]
    frame = pd.DataFrame(rows, columns=PAPER_COLUMNS)
    numeric = [c for c in PAPER_COLUMNS if c not in ("cell", "split", "trial")]
    frame[numeric] = frame[numeric].apply(pd.to_numeric)
    return frame
