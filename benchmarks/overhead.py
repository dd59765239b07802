"""Orchestration overhead: sweep wall time divided by the compute done inside trials, from one run of
the smoke sweep (tiny model, 2 cells x 3 trials, one trial at a time).

    .venv/bin/python benchmarks/overhead.py [--out /tmp/cft-bench-overhead]

Prints three ratios: sweep wall / in-trial time (train + score, what Tune schedules), in-trial
time / the training loops' own time plus scoring (Ray Train + DeepSpeed start-up, checkpoints), and
the share of wall time spent before the first trial (Ray, Serve, the base-model scoring).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="cft-bench-overhead-"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import orchestrator.results as results
    from orchestrator.spec import load_spec
    from orchestrator.store import RunStore
    from orchestrator.sweep import run

    spec = load_spec(ROOT / "sweeps" / "smoke.yaml").model_copy(update={"storage": args.out})
    t0 = time.time()
    run(spec)
    wall = time.time() - t0
    records = [r for r in RunStore(spec.run_dir).trial_records() if r.status == "done"]
    trial_time = sum(r.train_wall_s + r.eval_wall_s for r in records)
    loop_time = sum(r.train_metrics["wall_s"] + r.eval_wall_s for r in records)
    first_start = min(r.started_at for r in records)
    frame = results.trials(spec.run_dir)
    print(f"\n{len(records)} trials in {wall:.1f} s wall ({len(frame)} records)")
    print(f"in-trial time (train + score):           {trial_time:8.1f} s")
    print(f"training loops + scoring alone:          {loop_time:8.1f} s")
    print(f"sweep wall / in-trial time:              {wall / trial_time:8.2f}x")
    print(f"in-trial time / (loops + scoring):       {trial_time / loop_time:8.2f}x")
    print(f"start-up share (before first trial):     {(first_start - t0) / wall:8.1%}")


if __name__ == "__main__":
    main()
