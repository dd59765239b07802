"""Record the default sweep's lr x mix landscape once, as a tabular benchmark for search_efficiency.py.

    .venv/bin/python benchmarks/record_landscape.py [--side 3] [--methods soft,hard] [--storage DIR [--resume]]
                                                    [--out benchmarks/data/landscape_smollm2_interp.csv]

Runs sweeps/local.yaml unchanged except for the sampler and the methods: a `side` x `side` grid per
(model, method) cell, with the real training and scoring. Each row is one grid point with both
objectives (named as the spec names them) and their standard errors, so a replay can add each point's
own noise. About 3.3 min per trial on 2 cores; `--resume` with the same --storage finishes an
interrupted recording.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def grid_spec(side: int, storage: str, methods: list[str] | None = None):
    from orchestrator.spec import load_spec

    spec = load_spec(ROOT / "sweeps" / "local.yaml")
    return spec.model_copy(update={
        "name": f"landscape-{side}x{side}", "storage": storage, "trials_per_cell": side * side,
        "methods": {m: o for m, o in spec.methods.items() if not methods or m in methods},
        "search": spec.search.model_copy(update={"sampler": "grid"})})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=3)
    ap.add_argument("--methods", default=None, help="comma-separated (default: the spec's)")
    ap.add_argument("--resume", action="store_true", help="finish the recording in --storage")
    ap.add_argument("--storage", default=tempfile.mkdtemp(prefix="cft-landscape-"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "landscape_smollm2_interp.csv"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from orchestrator.sweep import run

    spec = grid_spec(args.side, args.storage, args.methods.split(",") if args.methods else None)
    started = time.time()
    run(spec, resume=args.resume)
    methods = f" --methods {args.methods}" if args.methods else ""
    write_landscape(spec.run_dir, args.out, [o.name for o in spec.objectives], [
        f"{args.side}x{args.side} grid per method of sweeps/local.yaml (SmolLM2-135M-Instruct),",
        f"recorded by: .venv/bin/python benchmarks/record_landscape.py --side {args.side}{methods}",
        f"{(time.time() - started) / 60:.1f} min"])


def write_landscape(run_dir, out: str, objectives: list[str], header: list[str]) -> None:
    """The run's finished trials as the landscape table (method, lr, mix, then each objective and its
    standard error), `header` as comment lines above it."""
    import orchestrator.results as results

    frame = results.trials(run_dir)
    done = frame[frame["status"] == "done"].sort_values(["method", "lr", "mix"])
    columns = ["method", "lr", "mix"] + [c for o in objectives for c in (o, f"{o}_se")]
    with open(out, "w") as f:
        f.writelines(f"# {line}\n" for line in header + [f"{len(done)} trials done of {len(frame)}"])
        done[columns].to_csv(f, index=False, float_format="%.9g")
    print(f"wrote {out}: {len(done)} grid points")


if __name__ == "__main__":
    main()
