"""The sweep at cluster scale, simulated on one machine:

    python benchmarks/cluster_sim.py [--json] [--scorers always-on] [--spec SPEC] [--trials-per-cell N]
                                     [--seconds-per-hour S]
                                     [--sampler random] [--no-kill] [--keep-logs] [--repeats N]

Starts Ray's own fake multi-node autoscaling cluster (ray.cluster_utils.AutoscalingCluster: Ray's
autoscaler with its FakeMultiNodeProvider, which starts a raylet per "node") with GPU node types
shaped like cluster.yaml's (fake GPUs, accelerator_type resources), scaled down to a few nodes. It runs
the real sweep (driver, Tune, searcher, records, resume, Serve, the planner's concurrency) on
benchmarks/data/cluster_sim.yaml, whose `standins:` section swaps the train and score steps for
stand-ins that hold the real resource shapes for a cost model's time (orchestrator/standins.py). Once
an A100 node has trained for a checkpoint, it kills that node's raylet (SIGKILL); the autoscaler
replaces the node and the trial resumes from its last checkpoint.

It prints:
- gpu_busy: GPU-seconds of work (training, lost training included, and scoring) / GPU-seconds of the
  GPU nodes that were up, from the first GPU node up to the last one gone after the sweep;
- gpu_busy_bound: the most any schedule could reach with this run's trials on nodes of these sizes
  (busy_bound), and gpu_busy_of_bound, the two's ratio;
- trials_planned, trials_finished (records "done"), trials_run_twice (keys trained by two trial runs),
  nodes_killed; and where the nodes' GPU-hours went (cost-model hours): work, the trials' start-ups,
  scorer replicas held (scoring, loading or idle), held by nothing (idle_gpu_hours, of which the
  stretches after each node's last work: idle_after_last_work_gpu_hours), lost training; node counts,
  wall time.
`--scorers always-on` runs the scorers as before (replicas held for the whole sweep, each over one GPU)
to compare.

Three departures from AutoscalingCluster as shipped: its start() and shutdown() run `ray stop --force`,
which stops every Ray on the machine, so this starts its head on free ports (the dashboard agent's
included) and its own temp dir and stops exactly the processes it started; its config template
(fake_multi_node/example.yaml) is missing from the wheel, so the template is here (BASE_CONFIG, from
Ray's repository); and its provider never replaces a killed node (SimNodeProvider says why), which
stalled the sweep: the killed node's trials waited for good for a node the autoscaler never launched.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Ray's token authentication, as on cluster.yaml's nodes, with a token of this cluster's own (Ray reads
# the mode when it is imported, so before that). The cluster's autoscaler imports SimNodeProvider from
# here and already holds the cluster's token.
if os.environ.get("RAY_FAKE_CLUSTER") != "1":
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})

import psutil  # noqa: E402  (a Ray dependency)
import yaml  # noqa: E402
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider  # noqa: E402
from ray.autoscaler.tags import STATUS_UP_TO_DATE, TAG_RAY_NODE_STATUS  # noqa: E402
from ray.cluster_utils import AutoscalingCluster  # noqa: E402

SPEC = ROOT / "benchmarks" / "data" / "cluster_sim.yaml"
HEAD_RESOURCES = {"CPU": 2}   # trial drivers (0.01 CPU each), Serve's controller and proxy
SIM_GPUS_PER_TYPE = 8   # cluster.yaml's GPU node types, each with at most this many GPUs (fewer nodes)


def node_types(cluster_yaml: Path = ROOT / "cluster.yaml") -> dict:
    """cluster.yaml's GPU node types as fake nodes: each instance type's GPUs, accelerator type and vCPUs
    (the planner's catalog), and fewer of them; `object_store_memory` keeps each fake raylet's store small."""
    from orchestrator.plan import load_node_types

    types, _ = load_node_types(cluster_yaml)
    return {t.name: {"resources": {"CPU": t.cpus, "GPU": t.gpus, f"accelerator_type:{t.gpu}": 1,
                                   "object_store_memory": 10**8},
                     "node_config": {"InstanceType": t.instance_type}, "min_workers": 0,
                     "max_workers": min(t.count, SIM_GPUS_PER_TYPE // t.gpus)}
            for t in types if t.gpus}


BASE_CONFIG = {   # ray/autoscaler/_private/fake_multi_node/example.yaml, with SimNodeProvider for its provider
    "cluster_name": "fake_multinode", "max_workers": 8,
    "provider": {"type": "external", "module": "benchmarks.cluster_sim.SimNodeProvider", "use_node_id_as_ip": True,
                 "disable_node_updaters": True, "disable_launch_config_check": True},
    "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.1,
    "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
    "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [],
    "rsync_filter": []}
POLL_S = 0.5


class SimNodeProvider(FakeMultiNodeProvider):
    """Ray's fake provider, with its nodes "up-to-date" once started, as a cloud provider's nodes are
    after setup. The fake provider leaves them "uninitialized" (the launcher's tag), and the autoscaler
    (node updaters off) only terminates an up-to-date node that stopped heartbeating: a killed node
    then stays listed forever, counts against max_workers, and is never replaced, so its trials wait
    for it for good. Here it is terminated after AUTOSCALER_HEARTBEAT_TIMEOUT_S and a new one launched,
    as when a cloud instance dies."""

    def create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        tags = {**tags, TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE}
        return super().create_node_with_resources_and_labels(node_config, tags, count, resources, labels)


class SimCluster(AutoscalingCluster):
    """AutoscalingCluster on its own port and temp dir, stopped by process id (see the module docstring)."""

    def _generate_config(self, head_resources, worker_node_types, autoscaler_v2=False, **config_kwargs):
        config = copy.deepcopy(BASE_CONFIG)
        config["available_node_types"] = copy.deepcopy(worker_node_types)
        config["available_node_types"]["ray.head.default"] = {"resources": dict(head_resources), "node_config": {},
                                                              "max_workers": 0}
        config.update(config_kwargs)
        return config

    def start(self, _system_config=None, override_env=None, attempts: int = 3):
        """Start the head, retried: on a loaded machine its raylet can give up waiting for the
        dashboard agent's ports (a fixed 30 s in Ray) before the agent has imported."""
        for attempt in range(attempts):
            try:
                return self._start_head(_system_config, override_env)
            except RuntimeError as err:
                self.shutdown(keep_logs=attempt == attempts - 1)   # whatever it had started
                if attempt == attempts - 1:
                    raise
                print(f"[sim] {err}; starting it again", file=sys.stderr, flush=True)

    def _start_head(self, _system_config, override_env):
        from trainers.ray_local import bind_loopback_only, free_port

        bind_loopback_only()   # every node, and this driver, on 127.0.0.1 (the env reaches the fake nodes)

        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="cftsim-")
        self._config["provider"]["gcs_address"] = self.address   # where the fake nodes join
        config_file = Path(self.temp_dir) / "autoscaling.json"
        config_file.write_text(json.dumps(self._config))
        ray_cli = Path(sys.executable).with_name("ray")
        cmd = [str(ray_cli), "start", "--head", "--block", f"--port={self.port}", "--node-ip-address=127.0.0.1",
               f"--temp-dir={self.temp_dir}", f"--autoscaling-config={config_file}", "--include-dashboard=false",
               f"--dashboard-agent-listen-port={free_port()}",   # not 52365: another local Ray may hold it
               f"--num-cpus={self._head_resources['CPU']}", "--num-gpus=0"]
        if _system_config:
            cmd.append(f"--system-config={json.dumps(_system_config, separators=(',', ':'))}")
        env = os.environ | {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1",
                            "AUTOSCALER_HEARTBEAT_TIMEOUT_S": "5", "PYTHONPATH": str(ROOT)} | (override_env or {})
        self.log = open(Path(self.temp_dir) / "head.log", "w")
        self.head = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while "Ray runtime started" not in Path(self.log.name).read_text():
            if self.head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the fake cluster's head did not start (see {self.log.name})")
            time.sleep(1)

    def connect(self, attempts: int = 3):
        """ray.init to this cluster's head. It looks for its raylet among every raylet on the machine and
        asks the GCS about each, which can time out on a loaded machine: retried."""
        import ray

        for attempt in range(attempts):
            try:
                return ray.init(address=self.address, _node_ip_address="127.0.0.1", logging_level="WARNING",
                                log_to_driver=False)
            except ConnectionError:
                if attempt == attempts - 1:
                    raise
                time.sleep(5)

    def processes(self) -> list[psutil.Process]:
        try:
            head = psutil.Process(self.head.pid)
            return [head] + head.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_node(self, node_id: str) -> int:
        """SIGKILL one fake node's raylet and what it started (its workers and agents); returns its pid."""
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                if p.name() == "raylet" and f"--node_id={node_id}" in p.cmdline():
                    _kill([p] + p.children(recursive=True))
                    return p.pid
        raise RuntimeError(f"no raylet of node {node_id} among this cluster's processes")

    def shutdown(self, keep_logs: bool = False):
        _kill(self.processes())
        self.log.close()
        if keep_logs:
            print(f"[sim] the cluster's logs: {self.temp_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


class Monitor(threading.Thread):
    """Samples the cluster's alive GPU nodes every POLL_S and kills one A100 node once it has trained
    through a checkpoint (a "train" interval in the stand-ins' timeline)."""

    def __init__(self, cluster: SimCluster, timeline: Path, kill: bool):
        super().__init__(daemon=True)
        self.cluster, self.timeline, self.kill = cluster, timeline, kill
        self.nodes: dict[str, dict] = {}   # node id -> {type, gpus, up, down}
        self.killed: list[dict] = []
        self.stop = threading.Event()

    def run(self):
        import ray

        while not self.stop.wait(POLL_S):
            now = time.time()
            for n in ray.nodes():
                gpus = int(n["Resources"].get("GPU", 0)) if n["Alive"] else None
                seen = self.nodes.get(n["NodeID"])
                if n["Alive"] and gpus:
                    if seen is None:
                        kind = next((k.split(":", 1)[1] for k in n["Resources"] if k.startswith("accelerator_type:")), "?")
                        self.nodes[n["NodeID"]] = {"type": kind, "gpus": gpus, "up": now, "down": None}
                elif seen is not None and seen["down"] is None:
                    seen["down"] = now
            if self.kill and not self.killed:
                try:
                    self._maybe_kill()
                except Exception as err:   # reported, and the sweep goes on
                    self.killed.append({"error": f"{type(err).__name__}: {err}"})

    def _maybe_kill(self):
        a100 = {i: n for i, n in self.nodes.items() if n["type"] == "A100" and n["down"] is None}
        for e in read_timeline(self.timeline):
            recent = time.time() - e.get("end", 0) < 1.0   # its trial is still training there
            if e["kind"] == "train" and not e["lost"] and recent and set(e["nodes"]) & set(a100):
                node_id = sorted(set(e["nodes"]) & set(a100))[0]
                pid = self.cluster.kill_node(node_id)
                self.killed.append({"node": node_id, "raylet_pid": pid, "at": time.time(), "while_training": e["key"]})
                print(f"[sim] killed node {node_id[:8]} (A100, raylet pid {pid}) while {e['key']} trained on it",
                      file=sys.stderr, flush=True)
                return

    def gpus_alive(self) -> int:
        return sum(n["gpus"] for n in self.nodes.values() if n["down"] is None)


def read_timeline(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_sweep(spec_file: Path, storage: str, cluster: SimCluster, cluster_yaml: Path) -> int:
    from orchestrator.sweep import main

    with contextlib.redirect_stdout(sys.stderr):   # --json: stdout holds only the result
        return main([str(spec_file), "--address", cluster.address, "--cluster", str(cluster_yaml),
                     "--storage", storage])


def measure(spec, run_dir: Path, monitor: Monitor, t_start: float, t_end: float, exit_codes: list[int],
            idle_timeout_s: float = 0.0) -> dict:
    from orchestrator.store import RunStore

    events = read_timeline(run_dir / "standins" / "timeline.jsonl")
    records = RunStore(str(run_dir)).trial_records()
    ups = [n["up"] for n in monitor.nodes.values()]
    window = (min(ups), max(n["down"] or t_end for n in monitor.nodes.values())) if ups else (t_start, t_end)
    capacity = sum(n["gpus"] * ((n["down"] or t_end) - n["up"]) for n in monitor.nodes.values())
    train = [e for e in events if e["kind"] == "train"]
    scoring = gpu_seconds(e for e in events if e["kind"] == "score")
    starts = gpu_seconds(e for e in events if e["kind"] == "train_start")
    work = gpu_seconds(train) + scoring
    ends = {e["replica"]: e["end"] for e in events if e["kind"] == "scorer_down"}
    for e in events:   # a replica lost with its node never logs going down: it held its GPUs until the node went
        if e["kind"] == "scorer_up" and e["replica"] not in ends:
            ends[e["replica"]] = monitor.nodes.get(e.get("node"), {}).get("down") or t_end
    scorer_gpu_s = sum(e["gpus"] * (ends[e["replica"]] - e["start"]) for e in events if e["kind"] == "scorer_up")
    runs: dict[str, int] = {}
    for e in events:
        if e["kind"] == "train_run":
            runs[e["key"]] = runs.get(e["key"], 0) + 1
    per_hour = spec.standins.seconds_per_hour
    bound = busy_bound(monitor, events, idle_timeout_s)
    nodes = per_node(monitor, events, t_end, per_hour)
    return {
        "gpu_busy": round(work / capacity, 3) if capacity else None,
        "trials_planned": len(spec.cells) * spec.trials_per_cell,
        "trials_finished": sum(r.status == "done" for r in records),
        "trials_run_twice": sum(n > 1 for n in runs.values()),
        "nodes_killed": sum("raylet_pid" in k for k in monitor.killed),
        "trials_failed": sum(r.status == "error" for r in records),
        "train_restarts_from_checkpoint": sum(e["lost"] for e in train),
        "lost_training_gpu_hours": round(gpu_seconds(e for e in train if e["lost"]) / per_hour, 2),
        "scorer_gpu_hours": round(scorer_gpu_s / per_hour, 2),
        "scorer_busy_gpu_hours": round(scoring / per_hour, 2),
        "train_start_gpu_hours": round(starts / per_hour, 2),
        # held by nothing: not by work, a trial's start-up or a scorer replica (loading or idle)
        "idle_gpu_hours": round((capacity - work - starts - (scorer_gpu_s - scoring)) / per_hour, 2),
        "idle_after_last_work_gpu_hours": round(sum(n["after_last_work_h"] * n["gpus"] for n in nodes), 2),
        "work_gpu_hours": round(work / per_hour, 2), "gpu_node_hours_gpus": round(capacity / per_hour, 2),
        "gpu_nodes_started": len(monitor.nodes), "scorers": "scale-to-zero"
        if spec.evaluation.release_idle_after_s is not None else "always-on",
        "sweep_exit_codes": exit_codes, "sweep_wall_s": round(t_end - t_start, 1),
        "cluster_up_s": round(window[1] - window[0], 1), "seconds_per_hour": per_hour,
        "gpu_busy_bound": bound,
        "gpu_busy_of_bound": round(work / capacity / bound, 3) if capacity and bound else None,
        "killed": monitor.killed, "nodes": nodes,
    }


def gpu_seconds(events) -> float:
    """GPU-seconds of timeline intervals (train, train_start, score: each holds `gpus` from start to end)."""
    return sum(e["gpus"] * (e["end"] - e["start"]) for e in events)


def busy_bound(monitor: Monitor, events: list[dict], idle_timeout_s: float) -> float | None:
    """The gpu_busy no schedule could beat with this run's trials on nodes of these sizes: a node type
    holds every GPU-second of its work and one start-up of each trial (no schedule avoids them), and
    at least one node for as long as its longest trial starts and trains; and each node type used
    stays up its idle timeout after its last work. The node kill, the start-ups it caused and the
    scorer replicas' loads are left out, so the bound is generous."""
    kind = {node_id: n["type"] for node_id, n in monitor.nodes.items()}
    node_gpus = {n["type"]: n["gpus"] for n in monitor.nodes.values()}
    scorer_node = {e["replica"]: e.get("node") for e in events if e["kind"] == "scorer_up"}
    work: dict[str, float] = {}
    trial_s: dict[tuple[str, str], float] = {}   # (node type, trial key) -> its training wall seconds
    start_s: dict[tuple[str, str], float] = {}   # (node type, trial key) -> its first start-up's
    start_gpu_s: dict[str, float] = {}            # node type -> GPU-seconds of each trial's first start-up
    for e in events:
        node = e["nodes"][0] if e["kind"] in ("train", "train_start") else scorer_node.get(e.get("replica"))
        if e["kind"] not in ("train", "train_start", "score") or node not in kind:
            continue
        t, seconds = kind[node], e["end"] - e["start"]
        if e["kind"] == "train_start":
            if (t, e["key"]) not in start_s:
                start_s[t, e["key"]] = seconds
                start_gpu_s[t] = start_gpu_s.get(t, 0.0) + e["gpus"] * seconds
            continue
        work[t] = work.get(t, 0.0) + e["gpus"] * seconds
        if e["kind"] == "train":
            trial_s[t, e["key"]] = trial_s.get((t, e["key"]), 0.0) + seconds
    least = {}
    for t, w in work.items():
        longest = max((s + start_s.get((kt, k), 0.0) for (kt, k), s in trial_s.items() if kt == t), default=0.0)
        least[t] = max(w + start_gpu_s.get(t, 0.0), node_gpus[t] * longest) + node_gpus[t] * idle_timeout_s
    return round(sum(work.values()) / sum(least.values()), 3) if least else None


def per_node(monitor: Monitor, events: list[dict], t_end: float, per_hour: float) -> list[dict]:
    """Where each GPU node's GPU-hours went: work, scorer replicas held (loading or idle included), and
    the idle stretches before its first work and after its last (launch to use; the idle timeout)."""
    scorer_node = {e["replica"]: e.get("node") for e in events if e["kind"] == "scorer_up"}
    spans: dict[str, list[tuple[float, float, float]]] = {}   # node -> (start, end, gpus) of work
    for e in events:
        if e["kind"] == "train":
            for node in e["nodes"]:
                spans.setdefault(node, []).append((e["start"], e["end"], e["gpus"] / len(e["nodes"])))
        elif e["kind"] == "score" and scorer_node.get(e["replica"]):
            spans.setdefault(scorer_node[e["replica"]], []).append((e["start"], e["end"], e["gpus"]))
    out = []
    for node_id, n in monitor.nodes.items():
        down, mine = n["down"] or t_end, spans.get(node_id, [])
        first, last = (min(s for s, _, _ in mine), max(e for _, e, _ in mine)) if mine else (down, down)
        out.append({"node": node_id[-5:], "type": n["type"], "gpus": n["gpus"],
                    "up_h": round((down - n["up"]) / per_hour, 2),
                    "work_gpu_h": round(sum((e - s) * g for s, e, g in mine) / per_hour, 2),
                    "before_first_work_h": round((first - n["up"]) / per_hour, 2),
                    "after_last_work_h": round((down - last) / per_hour, 2), "killed": n["down"] is not None
                    and any(k.get("node") == node_id for k in monitor.killed)})
    return out


def simulate(spec_file: Path, always_on: bool, kill: bool, keep_logs: bool = False,
             trials_per_cell: int | None = None, sampler: str | None = None, seed_offset: int = 0,
             seconds_per_hour: float | None = None) -> dict:
    import ray

    from orchestrator.spec import load_spec

    os.environ.pop("HF_HUB_OFFLINE", None)   # hub ids are only named, never fetched (stand-ins load nothing)
    spec = load_spec(spec_file)
    if always_on:
        spec = scorers_always_on(spec)
    if trials_per_cell:
        spec = spec.model_copy(update={"trials_per_cell": trials_per_cell})
    if sampler:
        spec = spec.model_copy(update={"search": spec.search.model_copy(update={"sampler": sampler})})
    spec = spec.model_copy(update={"seed": spec.seed + seed_offset})   # other trials: other mixes, other work
    if seconds_per_hour:
        clock = spec.standins.model_copy(update={"seconds_per_hour": seconds_per_hour})
        spec = spec.model_copy(update={"standins": clock})
    work = Path(tempfile.mkdtemp(prefix="cft-sim-run-"))
    sim_spec = work / "spec.yaml"
    sim_spec.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    # cluster.yaml's idle timeout on the cost model's clock (5 minutes: 15 s at 180 s an hour)
    idle_minutes = yaml.safe_load((ROOT / "cluster.yaml").read_text())["idle_timeout_minutes"] \
        * spec.standins.seconds_per_hour / 3600
    kinds = node_types()
    cluster = SimCluster(HEAD_RESOURCES, kinds, max_workers=sum(t["max_workers"] for t in kinds.values()),
                         idle_timeout_minutes=idle_minutes)
    cluster_yaml = work / "cluster.yaml"
    cluster_yaml.write_text(yaml.safe_dump(cluster._config))
    cluster.start(_system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3})
    ok = False
    try:
        cluster.connect()
        from ray import serve

        from trainers.ray_local import free_port

        # not port 8000: another Serve may hold it; the proxy on the head only, as the sweep starts it
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": free_port()})
        monitor = Monitor(cluster, work / "results" / spec.name / "standins" / "timeline.jsonl", kill)
        monitor.start()
        t0 = time.time()
        codes = [run_sweep(sim_spec, str(work / "results"), cluster, cluster_yaml)]
        if codes[-1] != 0:   # resume: unfinished trials run again under their keys
            codes.append(run_sweep(sim_spec, str(work / "results"), cluster, cluster_yaml))
        t1 = time.time()
        deadline = t1 + 60   # the cluster is up until its GPU nodes are gone (idle timeout)
        while monitor.gpus_alive() and time.time() < deadline:
            time.sleep(POLL_S)
        monitor.stop.set()
        monitor.join()
        result = measure(spec, work / "results" / spec.name, monitor, t0, time.time(), codes, idle_minutes * 60)
        print(f"[sim] result: {json.dumps(result)}", file=sys.stderr, flush=True)
        ok = not keep_logs
        return result
    finally:
        ray.shutdown()
        cluster.shutdown(keep_logs=not ok)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"[sim] the sweep's run directory: {work}", file=sys.stderr)


def scorers_always_on(spec):
    """The spec with its scorer replicas held for the whole sweep, each over one GPU: over their trials'
    shapes (tensor_parallel_size 2 and 4), the 8B's and 14B's would hold 6 of the one A100 node's 8 GPUs
    for good, and no 4-GPU 14B trial could start."""
    models = [m.model_copy(update={"evaluation": {k: v for k, v in m.evaluation.items() if k != "tensor_parallel_size"}})
              for m in spec.models]
    evaluation = spec.evaluation.model_copy(update={"release_idle_after_s": None})
    return spec.model_copy(update={"models": models, "evaluation": evaluation})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    cmd = [sys.executable, __file__, "--json", "--spec", args.spec, "--scorers", args.scorers,
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


if __name__ == "__main__":
    sys.exit(main())
