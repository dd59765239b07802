"""Search efficiency on the default sweep's measured landscape: each Optuna sampler replayed for many
seeds against the recorded lr x mix grid (benchmarks/data/landscape_smollm2_interp.csv, made by
benchmarks/record_landscape.py; landscape_smollm2.csv is the previous default's), in one run.

    .venv/bin/python benchmarks/search_efficiency.py [--seeds 50] [--trials 32] [--samplers tpe,random,grid,...]

A replayed trial at (lr, mix) observes each objective interpolated bilinearly over (log lr, mix)
between grid points, plus Gaussian noise with that point's interpolated standard error, so the
sampler sees what a sweep would. Its hypervolume is computed from the noiseless interpolated values of
the points it tried (what the search found, not how lucky its draws were), relative to the full
grid's hypervolume, with the report's reference point: the grid's worst value of each objective plus
10% of its range.

Prints, per method, the mean hypervolume after k trials with a 95% band over seeds, and per sampler
the trials needed to reach the full grid's hypervolume: the median over seeds (a seed that never
reaches it counts as more than --trials) and that median as a ratio to the grid's trial count.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LANDSCAPE = ROOT / "benchmarks" / "data" / "landscape_smollm2_interp.csv"
OBJECTIVES = ["calibration_error", "capability_loss"]
SHOWN_K = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class Landscape:
    """One method's recorded grid, interpolated over (log lr, mix) for the means and the errors."""

    def __init__(self, rows: pd.DataFrame):
        from scipy.interpolate import RegularGridInterpolator

        rows = mean_of_repeats(rows)
        self.lrs, self.mixes = np.sort(rows["lr"].unique()), np.sort(rows["mix"].unique())
        table = rows.set_index(["lr", "mix"])
        axes = (np.log(self.lrs), self.mixes)

        def surface(column: str):
            values = np.array([[table.loc[(lr, mix), column] for mix in self.mixes] for lr in self.lrs])
            return RegularGridInterpolator(axes, values)

        self.mean = [surface(o) for o in OBJECTIVES]
        self.se = [surface(f"{o}_se") for o in OBJECTIVES]
        self.grid_points = rows[OBJECTIVES].to_numpy(dtype=float)
        span = self.grid_points.max(axis=0) - self.grid_points.min(axis=0)
        self.reference = self.grid_points.max(axis=0) + 0.1 * span   # orchestrator.report's convention
        self.grid_hv = hypervolume(self.grid_points, self.reference)

    def at(self, lr: float, mix: float) -> tuple[np.ndarray, np.ndarray]:
        x = [[np.log(np.clip(lr, self.lrs[0], self.lrs[-1])), np.clip(mix, self.mixes[0], self.mixes[-1])]]
        return np.array([m(x)[0] for m in self.mean]), np.array([s(x)[0] for s in self.se])


def with_objective_names(table: pd.DataFrame) -> pd.DataFrame:
    """The landscape's two objectives, whatever the spec named them (`calibration_error_interp`), as
    OBJECTIVES: record_landscape.py writes method, lr, mix, then each objective and its error."""
    recorded = [c for c in table.columns[3:] if not c.endswith("_se")]
    names = dict(zip(recorded, OBJECTIVES)) | {f"{r}_se": f"{o}_se" for r, o in zip(recorded, OBJECTIVES)}
    return table.rename(columns=names)


def mean_of_repeats(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: a point measured twice gets the mean and the mean's standard error."""
    grouped = rows.groupby(["lr", "mix"], as_index=False)
    means = grouped[OBJECTIVES].mean()
    errors = grouped[[f"{o}_se" for o in OBJECTIVES]].agg(lambda se: np.sqrt((se ** 2).sum()) / len(se))
    return means.merge(errors, on=["lr", "mix"])


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    from optuna._hypervolume import compute_hypervolume

    inside = points[np.all(points < reference, axis=1)]
    return float(compute_hypervolume(inside, reference)) if len(inside) else 0.0


def build_sampler(name: str, seed: int, budget: int, lr, mix):
    """The sweep's own samplers by their spec names, and the alternatives Optuna's docs suggest for
    small multi-objective budgets."""
    import optuna

    from orchestrator.samplers import make_sampler

    if name == "tpe-default":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=4)
    return make_sampler(name, seed, budget, lr, mix)


def replay(landscape: Landscape, sampler_name: str, seed: int, trials: int, budget: int, lr, mix) -> list[float]:
    """Hypervolume fraction of the grid's after each of `trials` replayed trials."""
    import optuna

    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["minimize"] * 2,
                                sampler=build_sampler(sampler_name, seed, budget, lr, mix))
    tried = []

    def objective(trial) -> list[float]:
        mean, se = landscape.at(trial.suggest_float("lr", lr.low, lr.high, log=lr.log),
                                trial.suggest_float("mix", mix.low, mix.high))
        tried.append(mean)
        return list(mean + se * rng.standard_normal(2))

    study.optimize(objective, n_trials=trials)   # optimize, not ask/tell: GridSampler stops the study when done
    return [hypervolume(np.array(tried[:k]), landscape.reference) / landscape.grid_hv
            for k in range(1, len(tried) + 1)]


def trials_to_reach(curve: list[float], target: float) -> float:
    hits = [k for k, hv in enumerate(curve, start=1) if hv >= target]
    return float(hits[0]) if hits else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--landscape", default=str(LANDSCAPE))
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--samplers", default="tpe,random,grid,tpe-default,nsga2,gp")
    args = ap.parse_args()
    import optuna

    from orchestrator.spec import load_spec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    search = load_spec(ROOT / "sweeps" / "local.yaml").search
    table = with_objective_names(pd.read_csv(args.landscape, comment="#"))
    samplers = args.samplers.split(",")
    for method, rows in table.groupby("method"):
        land = Landscape(rows)
        grid_trials = len(land.grid_points)
        print(f"\n== {method}: {grid_trials}-point grid, hypervolume {land.grid_hv:.4g} "
              f"(reference {np.round(land.reference, 4).tolist()}), {args.seeds} seeds")
        curves = {}
        for name in samplers:
            n = min(args.trials, grid_trials) if name == "grid" else args.trials
            curves[name] = np.array([replay(land, name, seed, n, grid_trials, search.lr, search.mix)
                                     for seed in range(args.seeds)])
        print_curves(curves, args.trials)
        print_trials_to_grid(curves, grid_trials)


def print_curves(curves: dict[str, np.ndarray], trials: int) -> None:
    print("hypervolume / grid's after k trials: mean ± 95% band half-width over seeds")
    print(" k " + "".join(f"{name:>18}" for name in curves))
    for k in [k for k in SHOWN_K if k <= trials]:
        cells = []
        for c in curves.values():
            if k > c.shape[1]:
                cells.append(f"{'':>18}")
                continue
            col = c[:, k - 1]
            cells.append(f"{col.mean():10.3f} ± {1.96 * col.std(ddof=1) / np.sqrt(len(col)):5.3f}")
        print(f"{k:2d} " + "".join(cells))


def print_trials_to_grid(curves: dict[str, np.ndarray], grid_trials: int) -> None:
    # 1e-4 below the grid's own: the recorded lr values carry 6 significant digits
    for label, target in (("the full grid's hypervolume", 1.0 - 1e-4), ("95% of it", 0.95)):
        print(f"trials to reach {label} (grid: {grid_trials} trials)")
        print(f"{'sampler':>12} {'median':>8} {'quartiles':>12} {'reached':>8} {'median/grid':>12}")
        for name, c in curves.items():
            needed = np.array([trials_to_reach(list(curve), target) for curve in c])
            median, (q1, q3) = np.median(needed), np.percentile(needed, [25, 75])
            shown = lambda v: f"{v:.0f}" if np.isfinite(v) else f">{c.shape[1]}"
            ratio = f"{median / grid_trials:.2f}" if np.isfinite(median) else f">{c.shape[1] / grid_trials:.2f}"
            print(f"{name:>12} {shown(median):>8} {shown(q1) + '-' + shown(q3):>12} "
                  f"{np.isfinite(needed).mean():8.0%} {ratio:>12}")


if __name__ == "__main__":
    main()
