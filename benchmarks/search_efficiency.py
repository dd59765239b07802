"""Search efficiency: hypervolume after k trials for Optuna multi-objective (TPE) vs random search vs
a grid over lr x mix, same budget, same tiny model, same training and scoring, in one run.

    .venv/bin/python benchmarks/search_efficiency.py [--trials 6] [--out /tmp/cft-bench-search]

Prints, for every k, each sampler's hypervolume (both objectives minimised; reference point
calibration_error = 1, capability_loss = 1) and the ratios TPE/random and TPE/grid.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (1.0, 1.0)


def hypervolume_2d(points: np.ndarray, reference=REFERENCE) -> float:
    """Area dominated by the points (both minimised) inside the reference box."""
    pts = np.array([p for p in points if p[0] < reference[0] and p[1] < reference[1]])
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 0])]
    area, best_y = 0.0, reference[1]
    for i, (x, y) in enumerate(pts):
        best_y = min(best_y, y)
        next_x = pts[i + 1, 0] if i + 1 < len(pts) else reference[0]
        area += (next_x - x) * (reference[1] - best_y)
    return area


def bench_spec(sampler: str, trials: int, storage: str):
    from orchestrator.spec import load_spec

    spec = load_spec(ROOT / "sweeps" / "smoke.yaml")
    training = spec.training.model_copy(update={"max_steps": 12})
    return spec.model_copy(update={
        "name": f"search-{sampler}", "storage": storage, "methods": ["soft"], "trials_per_cell": trials,
        "search": spec.search.model_copy(update={"sampler": sampler}), "training": training})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="cft-bench-search-"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import orchestrator.results as results
    from orchestrator.sweep import run

    curves = {}
    for sampler in ("tpe", "random", "grid"):
        spec = bench_spec(sampler, args.trials, args.out)
        run(spec)
        frame = results.trials(spec.run_dir)
        frame = frame[frame["status"] == "done"].sort_values("key")
        pts = frame[["calibration_error", "capability_loss"]].to_numpy(dtype=float)
        curves[sampler] = [hypervolume_2d(pts[:k]) for k in range(1, len(pts) + 1)]
    print(f"\nHypervolume after k trials (tiny model, soft-target, reference {REFERENCE}):")
    print(" k      tpe   random     grid   tpe/random   tpe/grid")
    for k in range(1, args.trials + 1):
        hv = {s: c[k - 1] if k <= len(c) else float("nan") for s, c in curves.items()}
        r = {s: hv["tpe"] / hv[s] if hv[s] > 0 else float("nan") for s in ("random", "grid")}
        print(f"{k:2d} {hv['tpe']:8.4f} {hv['random']:8.4f} {hv['grid']:8.4f} {r['random']:12.3f} {r['grid']:10.3f}")


if __name__ == "__main__":
    main()
