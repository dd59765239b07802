"""The simulation's run: start the fake cluster, run the real sweep on it with the stand-in backend
(a resume when it exits non-zero), wait for its GPU nodes to go, measure."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.sim.backend import SimBackend
from benchmarks.sim.cluster import HEAD_RESOURCES, ROOT, SimCluster, node_types
from benchmarks.sim.measure import measure
from benchmarks.sim.monitor import POLL_S, Monitor
from benchmarks.sim.spec import SimSpec, load_sim_spec

SPEC = ROOT / "benchmarks" / "data" / "cluster_sim.yaml"
ENTRY = ROOT / "benchmarks" / "cluster_sim.py"


def run_sweep(spec_file: Path, storage: str, cluster: SimCluster, cluster_yaml: Path, backend) -> int:
    from orchestrator.sweep import main

    with contextlib.redirect_stdout(sys.stderr):   # --json: stdout holds only the result
        return main([str(spec_file), "--address", cluster.address, "--cluster", str(cluster_yaml),
                     "--storage", storage], backend=backend)


def sim_spec(spec_file: Path, always_on: bool, trials_per_cell: int | None = None, sampler: str | None = None,
             seed_offset: int = 0, seconds_per_hour: float | None = None) -> SimSpec:
    """The simulation's spec with the command line's changes."""
    sim = load_sim_spec(spec_file)
    spec = scorers_always_on(sim.sweep) if always_on else sim.sweep
    if trials_per_cell:
        spec = spec.model_copy(update={"trials_per_cell": trials_per_cell})
    if sampler:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"sampler": sampler})})
    spec = spec.model_copy(update={"seed": spec.seed + seed_offset})   # other trials: other mixes, other work
    standins = sim.standins
    if seconds_per_hour:
        standins = standins.model_copy(update={"seconds_per_hour": seconds_per_hour})
    return SimSpec(sweep=spec, standins=standins)


def start_cluster(work: Path, idle_minutes: float) -> tuple[SimCluster, Path]:
    """The fake cluster, started, and the launcher YAML the sweep plans against."""
    kinds = node_types()
    cluster = SimCluster(HEAD_RESOURCES, kinds, max_workers=sum(t["max_workers"] for t in kinds.values()),
                         idle_timeout_minutes=idle_minutes)
    cluster_yaml = work / "cluster.yaml"
    cluster_yaml.write_text(yaml.safe_dump(cluster._config))
    cluster.start(_system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3})
    return cluster, cluster_yaml


def simulate(spec_file: Path, always_on: bool, kill: bool, keep_logs: bool = False,
             trials_per_cell: int | None = None, sampler: str | None = None, seed_offset: int = 0,
             seconds_per_hour: float | None = None) -> dict:
    import ray

    os.environ.pop("HF_HUB_OFFLINE", None)   # hub ids are only named, never fetched (stand-ins load nothing)
    sim = sim_spec(spec_file, always_on, trials_per_cell, sampler, seed_offset, seconds_per_hour)
    work = Path(tempfile.mkdtemp(prefix="cft-sim-run-"))
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(sim.sweep.model_dump(mode="json", exclude_none=True)))
    # cluster.yaml's idle timeout on the cost model's clock (5 minutes: 15 s at 180 s an hour)
    idle_minutes = yaml.safe_load((ROOT / "cluster.yaml").read_text())["idle_timeout_minutes"] \
        * sim.standins.seconds_per_hour / 3600
    cluster, cluster_yaml = start_cluster(work, idle_minutes)
    ok = False
    try:
        result = run_on(cluster, cluster_yaml, sim, spec_path, work, kill, idle_minutes)
        ok = not keep_logs
        return result
    finally:
        ray.shutdown()
        cluster.shutdown(keep_logs=not ok)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"[sim] the sweep's run directory: {work}", file=sys.stderr)


def run_on(cluster: SimCluster, cluster_yaml: Path, sim: SimSpec, spec_path: Path, work: Path, kill: bool,
           idle_minutes: float) -> dict:
    """Run the sweep (and a resume if it exits non-zero) on the started cluster; its measures."""
    cluster.connect()
    from ray import serve

    from trainers.ray_local import free_port

    # not port 8000: another Serve may hold it; the proxy on the head only, as the sweep starts it
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": free_port()})
    run_dir = work / "results" / sim.sweep.name
    monitor = Monitor(cluster, run_dir / "standins" / "timeline.jsonl", kill)
    monitor.start()
    backend = SimBackend(sim.standins, str(run_dir.absolute()))
    t0 = time.time()
    codes = [run_sweep(spec_path, str(work / "results"), cluster, cluster_yaml, backend)]
    if codes[-1] != 0:   # resume: unfinished trials run again under their keys
        codes.append(run_sweep(spec_path, str(work / "results"), cluster, cluster_yaml, backend))
    deadline = time.time() + 60   # the cluster is up until its GPU nodes are gone (idle timeout)
    while monitor.gpus_alive() and time.time() < deadline:
        time.sleep(POLL_S)
    monitor.stop.set()
    monitor.join()
    result = measure(sim, run_dir, monitor, t0, time.time(), codes, idle_minutes * 60)
    print(f"[sim] result: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def scorers_always_on(spec):
    """The spec with its scorer replicas held for the whole sweep, each over one GPU: over their trials'
    shapes (tensor_parallel_size 2 and 4), the 8B's and 14B's would hold 6 of the one A100 node's 8 GPUs
    for good, and no 4-GPU 14B trial could start."""
    models = [m.model_copy(update={"evaluation": {k: v for k, v in m.evaluation.items() if k != "tensor_parallel_size"}})
              for m in spec.models]
    evaluation = spec.evaluation.model_copy(update={"release_idle_after_s": None})
    return spec.model_copy(update={"models": models, "evaluation": evaluation})


def main(argv=None, description: str | None = None) -> int:
    p = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--spec", default=str(SPEC))
    p.add_argument("--scorers", choices=["spec", "always-on"], default="spec",
                   help="always-on: hold scorer replicas for the whole sweep, each over one GPU (the old behaviour)")
    p.add_argument("--trials-per-cell", type=int,
                   help="instead of the spec's 12 (sweeps/paper.yaml's; 3 is a 20-minute run)")
    p.add_argument("--seconds-per-hour", type=float,
                   help="instead of the spec's clock (180 real seconds a simulated hour): faster, and Ray's own "
                        "overheads weigh more")
    p.add_argument("--sampler", choices=["tpe", "gp", "random", "grid"],
                   help="instead of the spec's; random gives each cell's k-th trial the same parameters, so "
                        "the same work, whatever the order trials start and end in (to compare schedules)")
    p.add_argument("--no-kill", action="store_true", help="kill no node")
    p.add_argument("--keep-logs", action="store_true", help="keep the cluster's logs and the sweep's run directory")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the simulation this many times, each with the next sweep seed (other sampled "
                        "mixes, so other work), and report the mean and standard error of gpu_busy, "
                        "its bound and their ratio")
    p.add_argument("--seed-offset", type=int, default=0, help="add this to the spec's seed")
    args = p.parse_args(argv)
    if args.repeats > 1:
        result = summarize([repeat(args, i) for i in range(args.repeats)])
    else:
        with contextlib.redirect_stdout(sys.stderr):   # --json: Ray prints a killed raylet's last logs to stdout
            result = simulate(Path(args.spec), args.scorers == "always-on", not args.no_kill, args.keep_logs,
                              args.trials_per_cell, args.sampler, args.seed_offset, args.seconds_per_hour)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    ok = result["trials_finished"] == result["trials_planned"] and result["trials_run_twice"] == 0
    return 0 if ok else 1


def repeat(args, i: int) -> dict:
    """The i-th of several runs, in a process of its own (a driver's Ray state does not survive into
    the next cluster), with the next seed; its JSON result."""
    cmd = [sys.executable, str(ENTRY), "--json", "--spec", args.spec, "--scorers", args.scorers,
           "--seed-offset", str(args.seed_offset + i)]
    cmd += ["--trials-per-cell", str(args.trials_per_cell)] if args.trials_per_cell else []
    cmd += ["--sampler", args.sampler] if args.sampler else []
    cmd += ["--seconds-per-hour", str(args.seconds_per_hour)] if args.seconds_per_hour else []
    cmd += ["--no-kill"] * args.no_kill + ["--keep-logs"] * args.keep_logs
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    """Several runs as one result: the mean and standard error over the runs of gpu_busy, its bound and
    their ratio, trial counts summed over them, and each run's own result under `runs`."""
    counts = ("trials_planned", "trials_finished", "trials_run_twice", "nodes_killed", "trials_failed")
    out = {}
    for name in ("gpu_busy", "gpu_busy_bound", "gpu_busy_of_bound"):
        mean, se = mean_se([r[name] for r in runs])
        out |= {name: round(mean, 3), f"{name}_se": round(se, 3)}
    return out | {"repeats": len(runs), **{k: sum(r[k] for r in runs) for k in counts}, "runs": runs}


def mean_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5
