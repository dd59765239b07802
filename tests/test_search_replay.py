"""The search-efficiency benchmark's replay (benchmarks/search_efficiency.py): its landscape returns
the recorded values at the grid points, the sweep's grid sampler visits exactly the recorded grid,
and the recorded landscape in benchmarks/data is a whole grid with its errors."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.samplers import make_sampler
from orchestrator.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_efficiency", ROOT / "benchmarks" / "search_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def search():
    return load_spec(ROOT / "sweeps" / "local.yaml").search


def grid_rows(search, side: int = 4, seed: int = 0) -> pd.DataFrame:
    """A side x side landscape on the sweep grid's own points, made up but shaped like a front."""
    sampler = make_sampler("grid", seed, side * side, search.lr, search.mix)
    lrs, mixes = sampler._search_space["lr"], sampler._search_space["mix"]
    rng = np.random.default_rng(seed)
    rows = [{"method": "soft", "lr": lr, "mix": mix,
             "calibration_error": 1.9 - 0.2 * i + 0.3 * mix + rng.normal(0, 0.02), "calibration_error_se": 0.03,
             "capability_loss": 0.05 + 0.1 * i * i * (1 - mix), "capability_loss_se": 0.01}
            for i, lr in enumerate(lrs) for mix in mixes]
    return pd.DataFrame(rows)


def test_landscape_is_exact_at_grid_points_and_between_them(bench, search):
    rows = grid_rows(search)
    land = bench.Landscape(rows)
    for _, r in rows.iterrows():
        mean, se = land.at(r["lr"], r["mix"])
        assert mean == pytest.approx([r["calibration_error"], r["capability_loss"]], abs=1e-9)
        assert se == pytest.approx([r["calibration_error_se"], r["capability_loss_se"]])
    a, b = rows.iloc[0], rows.iloc[1]          # same lr, neighbouring mixes
    mid, _ = land.at(a["lr"], (a["mix"] + b["mix"]) / 2)
    assert mid[0] == pytest.approx((a["calibration_error"] + b["calibration_error"]) / 2)


def test_repeated_points_are_averaged_with_the_means_error(bench, search):
    rows = grid_rows(search)
    again = rows.iloc[[0]].assign(calibration_error=rows.iloc[0]["calibration_error"] + 0.1)
    points = bench.mean_of_repeats(pd.concat([rows, again]))
    first = points[(points["lr"] == rows.iloc[0]["lr"]) & (points["mix"] == rows.iloc[0]["mix"])].iloc[0]
    assert len(points) == len(rows)
    assert first["calibration_error"] == pytest.approx(rows.iloc[0]["calibration_error"] + 0.05)
    assert first["calibration_error_se"] == pytest.approx(0.03 / np.sqrt(2))


def test_grid_sampler_replay_reaches_the_grid_hypervolume_on_its_last_trial(bench, search):
    land = bench.Landscape(grid_rows(search))
    curve = bench.replay(land, "grid", seed=3, trials=16, budget=16, lr=search.lr, mix=search.mix)
    assert len(curve) == 16 and all(np.diff(curve) >= -1e-12)
    assert curve[-1] == pytest.approx(1.0, abs=1e-6)
    assert bench.trials_to_reach(curve, 1 - 1e-4) <= 16
    assert bench.trials_to_reach(curve[:1], 2.0) == math.inf


def test_recorded_landscape_is_a_whole_grid_per_method_with_errors(bench):
    table = bench.with_objective_names(pd.read_csv(bench.LANDSCAPE, comment="#"))
    assert set(table["method"]) == {"soft", "hard"}
    for _, rows in table.groupby("method"):
        side = rows["lr"].nunique()
        points = bench.mean_of_repeats(rows)
        assert side >= 3 and rows["mix"].nunique() == side and len(points) == side * side
        assert (rows[["calibration_error_se", "capability_loss_se"]] > 0).all().all()
    assert "record_landscape.py" in bench.LANDSCAPE.read_text().split("\n", 3)[1]
