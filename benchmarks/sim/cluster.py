"""Ray's fake multi-node autoscaling cluster, on its own ports and temp dir (see benchmarks/cluster_sim.py
for why it departs from AutoscalingCluster as shipped)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # a Ray dependency
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
from ray.autoscaler.tags import STATUS_UP_TO_DATE, TAG_RAY_NODE_STATUS
from ray.cluster_utils import AutoscalingCluster

ROOT = Path(__file__).resolve().parents[2]
HEAD_RESOURCES = {"CPU": 2}   # trial drivers (0.01 CPU each), Serve's controller and proxy
SIM_GPUS_PER_TYPE = 8   # cluster.yaml's GPU node types, each with at most this many GPUs (fewer nodes)


def node_types(cluster_yaml: Path = ROOT / "cluster.yaml") -> dict:
    """cluster.yaml's GPU node types as fake nodes: each instance type's GPUs, accelerator type and vCPUs
    (the planner's catalog), and fewer of them; `object_store_memory` keeps each fake raylet's store small."""
    from orchestrator.scheduling.nodes import load_node_types

    types, _ = load_node_types(cluster_yaml)
    return {t.name: {"resources": {"CPU": t.cpus, "GPU": t.gpus, f"accelerator_type:{t.gpu}": 1,
                                   "object_store_memory": 10**8},
                     "node_config": {"InstanceType": t.instance_type}, "min_workers": 0,
                     "max_workers": min(t.count, SIM_GPUS_PER_TYPE // t.gpus)}
            for t in types if t.gpus}


BASE_CONFIG = {   # ray/autoscaler/_private/fake_multi_node/example.yaml, with SimNodeProvider for its provider
    "cluster_name": "fake_multinode", "max_workers": 8,
    "provider": {"type": "external", "module": "benchmarks.sim.cluster.SimNodeProvider", "use_node_id_as_ip": True,
                 "disable_node_updaters": True, "disable_launch_config_check": True},
    "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.1,
    "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
    "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [],
    "rsync_filter": []}
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
