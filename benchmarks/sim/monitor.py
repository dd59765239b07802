"""What the simulation watches while the sweep runs: the cluster's GPU nodes, up and down, and one
A100 node killed once it has trained through a checkpoint."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from benchmarks.sim.cluster import SimCluster

POLL_S = 0.5


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
