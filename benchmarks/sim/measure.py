"""What the simulation measures from the stand-ins' timeline, the records and the monitor's nodes."""

from __future__ import annotations

from pathlib import Path

from benchmarks.sim.monitor import Monitor, read_timeline


def measure(sim, run_dir: Path, monitor: Monitor, t_start: float, t_end: float, exit_codes: list[int],
            idle_timeout_s: float = 0.0) -> dict:
    from orchestrator.store import RunStore

    spec = sim.sweep

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
    per_hour = sim.standins.seconds_per_hour
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
