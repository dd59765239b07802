"""Node types: a cluster-launcher YAML's at their largest (each type's max_workers nodes, within the
cluster's max_workers: what the autoscaler can reach, not what is up now), or this machine as the
embedded local Ray sees it. A node type's GPUs come from its explicit `resources` (`GPU`, `CPU`,
`accelerator_type:<GPU>`), else from its instance type (orchestrator.gpu_catalog)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.gpu_catalog import GCP_ACCELERATORS, GPUS, INSTANCE_TYPES

HEAD_BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"   # what `ray up` leaves on the head node


@dataclass
class NodeType:
    name: str
    instance_type: str
    count: int                  # nodes of this type when the cluster is at its largest
    gpus: int
    gpu: str | None = None      # Ray's accelerator type
    gpu_gib: float | None = None
    cpus: float | None = None   # None: not known, not checked
    source: str = "catalog"

    def describe(self) -> str:
        gpus = f"{self.gpus} x {self.gpu or '?'} ({self.gpu_gib or '?'} GiB)" if self.gpus else "no GPU"
        cpus = f", {self.cpus:g} CPU" if self.cpus else ""
        return f"{self.name}: {self.count} x {self.instance_type} [{gpus}{cpus}]"


def load_node_types(path: str | Path) -> tuple[list[NodeType], list[str]]:
    """The node types of a cluster-launcher YAML at their largest, and warnings about what is unknown."""
    config = yaml.safe_load(Path(path).expanduser().read_text())
    cluster_max = int(config.get("max_workers", 2))
    head = config.get("head_node_type")
    types, warnings, total = [], [], 0
    for name, node in config["available_node_types"].items():
        count = min(int(node.get("max_workers", 0 if name == head else cluster_max)), cluster_max)
        count += name == head
        total += count - (name == head)
        kind = _node_type(name, node.get("node_config", {}), node.get("resources") or {}, count)
        if kind.gpus and kind.gpu_gib is None:
            warnings.append(f"node type {name}: the memory of its GPUs is unknown; add {kind.instance_type} to "
                            "orchestrator/gpu_catalog.py INSTANCE_TYPES or give it resources "
                            '{"accelerator_type:<GPU>": 1} naming a GPU listed there')
        types.append(kind)
    if total > cluster_max:
        warnings.append(f"the node types' max_workers add up to {total}, above the cluster's max_workers "
                        f"({cluster_max}); the plan lets each type reach its own maximum")
    return types, warnings


def _node_type(name: str, node_config: dict, resources: dict, count: int) -> NodeType:
    instance = node_config.get("InstanceType") or Path(str(node_config.get("machineType", "?"))).name
    gpus, gpu, cpus = INSTANCE_TYPES.get(instance, (0, None, None))
    source = "catalog" if instance in INSTANCE_TYPES else "unknown instance type"
    for accel in node_config.get("guestAccelerators", []):   # GCP N1 machines with attached GPUs
        gpus, gpu = int(accel.get("acceleratorCount", 1)), GCP_ACCELERATORS.get(accel.get("acceleratorType"))
        cpus, source = _gcp_vcpus(instance), "guestAccelerators"
    if resources:
        labels = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
        gpus, cpus = int(resources.get("GPU", gpus)), resources.get("CPU", cpus)   # Ray: autodetected, then these
        gpu, source = (labels[0] if labels else gpu), "resources"
    gpu = gpu if gpus else None
    memory = GPUS[gpu].memory_gib if gpu in GPUS else None
    return NodeType(name, instance, count, gpus, gpu, memory, cpus, source)


def _gcp_vcpus(machine_type: str) -> int | None:
    match = re.search(r"-(\d+)$", machine_type)
    return int(match.group(1)) if match else None


def local_node_types(num_cpus: float) -> list[NodeType]:
    """This machine as the embedded local Ray sees it: the CPUs the sweep starts it with
    (capacity.local_num_cpus), and the GPUs nvidia-smi lists."""
    gpus, name, gib = _local_gpus()
    return [NodeType("local", "this machine", 1, gpus, name, gib, float(num_cpus), "this machine")]


def _local_gpus() -> tuple[int, str | None, float | None]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0, None, None
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    if not rows:
        return 0, None, None
    name = re.sub(r"^NVIDIA\s+", "", rows[0][0].strip()).split()[0]
    return len(rows), name, float(rows[0][1]) / 1024


def cluster_yaml_in_use(cluster_yaml: str | None, joining: bool) -> str | None:
    """The cluster YAML to plan against: the one given, else (when joining a running cluster) the copy
    `ray up` left on the head node, where a submitted sweep job runs."""
    if cluster_yaml:
        return cluster_yaml
    bootstrap = Path(HEAD_BOOTSTRAP_CONFIG).expanduser()
    return str(bootstrap) if joining and bootstrap.is_file() else None
