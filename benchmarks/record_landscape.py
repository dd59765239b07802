"""Record the default sweep's lr x mix landscape once, as a tabular benchmark for search_efficiency.py.

    .venv/bin/python benchmarks/record_landscape.py [--side 4] [--out benchmarks/data/landscape_smollm2.csv]

Runs sweeps/local.yaml unchanged except for the sampler: a `side` x `side` grid per (model, method)
cell, with the real training and scoring. Each row is one grid point with both objectives and their
standard errors, so a replay can add each point's own noise. About 2.2 min per trial on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["method", "lr", "mix", "calibration_error", "calibration_error_se", "capability_loss",
           "capability_loss_se"]


def grid_spec(side: int, storage: str):
    from orchestrator.spec import load_spec

    spec = load_spec(ROOT / "sweeps" / "local.yaml")
    return spec.model_copy(update={
        "name": f"landscape-{side}x{side}", "storage": storage, "trials_per_cell": side * side,
        "search": spec.search.model_copy(update={"sampler": "grid"})})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=4)
    ap.add_argument("--storage", default=tempfile.mkdtemp(prefix="cft-landscape-"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "landscape_smollm2.csv"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from orchestrator.sweep import run

    spec = grid_spec(args.side, args.storage)
    started = time.time()
    run(spec)
    write_landscape(spec.run_dir, args.out, [
        f"{args.side}x{args.side} grid per method of sweeps/local.yaml (SmolLM2-135M-Instruct),",
        f"recorded by: .venv/bin/python benchmarks/record_landscape.py --side {args.side}",
        f"{(time.time() - started) / 60:.1f} min"])


def write_landscape(run_dir, out: str, header: list[str]) -> None:
    """The run's finished trials as the landscape table, `header` as comment lines above it."""
    import orchestrator.results as results

    frame = results.trials(run_dir)
    done = frame[frame["status"] == "done"].sort_values(["method", "lr", "mix"])
    with open(out, "w") as f:
        f.writelines(f"# {line}\n" for line in header + [f"{len(done)} trials done of {len(frame)}"])
        done[COLUMNS].to_csv(f, index=False, float_format="%.9g")
    print(f"wrote {out}: {len(done)} grid points")


if __name__ == "__main__":
    main()
