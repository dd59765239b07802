"""Check a sweep against a cluster before any money is spent:

    python -m orchestrator.sweep sweeps/paper.yaml --plan --cluster cluster.yaml [--json]

Starts no Ray. The cluster is a cluster-launcher YAML's node types at their largest (each type's
max_workers nodes, within the cluster's max_workers): what the autoscaler can reach, not what is up
now. A node type's GPUs come from its explicit `resources` (`GPU`, `CPU`, `accelerator_type:<GPU>`),
else from its instance type (orchestrator.gpu_catalog). Without a YAML the cluster is this machine, as
the embedded local Ray would see it.

The model, per GPU (every constant below is an estimate; the plan says which numbers it used):
- training worker: bf16 weights (split over the workers under ZeRO-3) + LoRA weights, gradients and
  Adam state in fp32 (16 bytes a parameter) + activations of one micro-batch without recomputation
  (ACTIVATION_BYTES per token, layer and hidden unit; flash attention, so nothing quadratic) + its
  bf16 logits and their fp32 copy for the loss + TRAIN_OVERHEAD_GIB (CUDA context, NCCL, allocator);
  sequences are TRAIN_SEQ_TOKENS long (a prompt and a number; a replay problem and its solution).
- scorer replica, per tensor-parallel rank: its share of the bf16 weights and of the KV cache for
  max_batch_size sequences of max_model_len tokens + max_loras LoRA slots of the largest rank (vLLM
  reserves them for every linear layer) + SCORER_OVERHEAD_GIB,
  against vLLM's share of the GPU (VLLM_GPU_FRACTION of gpus_per_replica GPUs).
- GPU-hours: a LoRA trial costs TRAIN_FLOPS_PER_PARAM_TOKEN x (active) parameters x tokens FLOPs (tokens: the
  trainer's own step plan at the middle of the searched mix range, times TRAIN_SEQ_TOKENS) at TRAIN_MFU
  of the GPU's peak. Always-on scorer replicas hold their GPUs for the whole sweep, whose length is
  taken as the trials' summed wall time divided by the concurrency; evaluation work itself (and so
  what scorers that scale to zero hold) is not modelled.
- concurrency: scorer replicas are placed first (largest first, each on the smallest GPU that fits;
  those that scale to zero, release_idle_after_s, are checked for fit but leave their GPUs to trials);
  then trials are placed cell by cell in the searcher's round-robin order until no further trial fits.
  That number is what Tune's max_concurrent_trials should be: trials beyond what is up now stay
  pending, and their resource demand is what makes the autoscaler add nodes.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from orchestrator.gpu_catalog import GCP_ACCELERATORS, GPUS, INSTANCE_TYPES, ModelShape, model_shape

TRAIN_SEQ_TOKENS = 256
ACTIVATION_BYTES = 34          # Korthikanti et al. 2022, bf16, per token x layer x hidden unit
TRAIN_OVERHEAD_GIB = 1.5
SCORER_OVERHEAD_GIB = 2.0
VLLM_GPU_FRACTION = 0.9        # vLLM's default gpu_memory_utilization
LORA_STATE_BYTES = 16          # fp32 weight + gradient + two Adam moments
VLLM_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # vLLM's slots
TRAIN_FLOPS_PER_PARAM_TOKEN = 4   # forward 2 + backward through the frozen weights 2 (LoRA's own: ~0)
TRAIN_MFU = 0.3
GIB = 2 ** 30
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


@dataclass
class Shape:
    """What one trial (or one scorer replica) asks Ray for, and the GPU memory it needs per GPU."""
    bundles: int                # Train workers (one trial) or 1 (one scorer replica)
    cpus: float                 # per bundle
    gpus: float                 # per bundle
    accelerator_type: str | None
    need_gib: float | None      # per GPU; None: model size unknown
    budget_fraction: float = 1.0   # share of a GPU's memory the shape may use
    parts: dict = field(default_factory=dict)

    def describe(self) -> str:
        res = f"CPU: {self.cpus:g}, GPU: {self.gpus:g}"
        if self.accelerator_type:
            res += f", accelerator_type: {self.accelerator_type}"
        return f"{self.bundles} x {{{res}}}"

    def why_not(self, node: NodeType) -> str | None:
        """Why this shape cannot run on this node type at all (None: it can)."""
        if self.accelerator_type and self.accelerator_type != node.gpu:
            return f"needs {self.accelerator_type}, has {node.gpu or 'no GPU'}"
        if self.gpus > node.gpus:
            return f"needs {self.gpus:g} GPU(s) on one node, has {node.gpus}"
        if node.cpus is not None and self.cpus > node.cpus:
            return f"needs {self.cpus:g} CPUs on one node, has {node.cpus:g}"
        if self.gpus and self.bundles * self.gpus > node.count * node.gpus:
            return f"needs {self.bundles * self.gpus:g} GPUs, the type has {node.count * node.gpus} at most"
        if self.gpus and self.need_gib is not None:
            if node.gpu_gib is None:
                return "GPU memory unknown (add its instance type to orchestrator/gpu_catalog.py)"
            budget = node.gpu_gib * self.budget_fraction
            if self.need_gib > budget:
                return f"needs {self.need_gib:.1f} GiB per GPU, has {budget:.1f}"
        return None


# ---------------------------------------------------------------------------------------- the cluster

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


def local_node_types(spec) -> list[NodeType]:
    """This machine as the embedded local Ray sees it: the CPUs connect() starts it with, and the GPUs
    nvidia-smi lists."""
    from orchestrator.cluster import local_num_cpus

    gpus, name, gib = _local_gpus()
    return [NodeType("local", "this machine", 1, gpus, name, gib, float(local_num_cpus(spec)), "this machine")]


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


# ---------------------------------------------------------------------------------------- the shapes

def lora_params(shape: ModelShape, rank: int, modules: list[str]) -> float:
    dims = {"q_proj": (shape.hidden, shape.q_dim), "k_proj": (shape.hidden, shape.kv_dim),
            "v_proj": (shape.hidden, shape.kv_dim), "o_proj": (shape.q_dim, shape.hidden)}
    # other modules (MLP projections): taken as hidden -> 3 x hidden
    per_layer = sum(sum(dims.get(m, (shape.hidden, 3 * shape.hidden))) for m in modules)
    return rank * per_layer * shape.layers


def training_shape(cfg, shape: ModelShape | None) -> Shape:
    need, parts = None, {}
    if shape is not None and cfg.gpus_per_worker:
        tokens = cfg.batch_size * TRAIN_SEQ_TOKENS
        shards = cfg.workers_per_trial if cfg.zero_stage == 3 else 1
        parts = {"weights": shape.params_b * 1e9 * 2 / shards,
                 "lora_state": lora_params(shape, cfg.lora_r, cfg.lora_target_modules) * LORA_STATE_BYTES,
                 "activations": tokens * shape.layers * shape.hidden * ACTIVATION_BYTES,
                 "logits": tokens * shape.vocab * (2 + 4),
                 "overhead": TRAIN_OVERHEAD_GIB * GIB}
        parts = {k: round(v / GIB, 2) for k, v in parts.items()}
        need = round(sum(parts.values()), 2)
    return Shape(cfg.workers_per_trial, cfg.cpus_per_worker, cfg.gpus_per_worker, cfg.accelerator_type, need,
                 parts=parts)


def scorer_shape(engine, shape: ModelShape | None, lora_rank: int) -> Shape:
    """One scorer replica; `engine` is the model's EngineOptions (sweep settings + its overrides)."""
    need, parts = None, {}
    tp = engine.tensor_parallel_size
    if shape is not None and engine.gpus_per_replica:
        kv_per_token = 2 * shape.layers * shape.kv_dim * 2   # K and V, bf16
        lora = lora_params(shape, lora_rank, VLLM_LORA_MODULES) * 2
        parts = {"weights": shape.params_b * 1e9 * 2 / tp,
                 "kv_cache": kv_per_token * engine.max_model_len * engine.max_batch_size / tp,
                 "lora_slots": engine.max_loras * lora / tp,
                 "overhead": SCORER_OVERHEAD_GIB * GIB}
        parts = {k: round(v / GIB, 2) for k, v in parts.items()}
        need = round(sum(parts.values()), 2)
    fraction = VLLM_GPU_FRACTION * min(1.0, engine.gpus_per_replica or 1.0)
    return Shape(1, engine.cpus_per_replica, engine.replica_gpus, engine.accelerator_type, need, fraction, parts)


# ---------------------------------------------------------------------------------------- placement

class Pool:
    """The free CPUs and GPUs of every node of the largest cluster."""

    def __init__(self, node_types: list[NodeType]):
        self.types = {t.name: t for t in node_types}
        self.free = {t.name: [[float(t.gpus), t.cpus if t.cpus is not None else math.inf] for _ in range(t.count)]
                     for t in node_types}

    def copy(self) -> Pool:
        other = Pool([])
        other.types, other.free = self.types, {k: [list(n) for n in v] for k, v in self.free.items()}
        return other

    def place(self, shape: Shape, candidates: list[NodeType]) -> str | None:
        """Place all of a shape's bundles on one node type (the first candidate with room); return it."""
        for node_type in candidates:
            nodes = [list(n) for n in self.free[node_type.name]]
            order = sorted(range(len(nodes)), key=lambda i: nodes[i][0])   # fullest first: Ray's PACK
            placed = 0
            for i in order:
                while placed < shape.bundles and nodes[i][0] >= shape.gpus and nodes[i][1] >= shape.cpus:
                    nodes[i][0] -= shape.gpus
                    nodes[i][1] -= shape.cpus
                    placed += 1
            if placed == shape.bundles:
                self.free[node_type.name] = nodes
                return node_type.name
        return None


def candidates(shape: Shape, node_types: list[NodeType]) -> tuple[list[NodeType], dict[str, str]]:
    """The node types a shape can run on, smallest GPUs first, and why each other one cannot."""
    fit, why = [], {}
    for t in node_types:
        reason = shape.why_not(t)
        if reason:
            why[t.name] = reason
        else:
            fit.append(t)
    fit.sort(key=lambda t: (t.gpu_gib or 0.0, t.gpus, t.name) if shape.gpus else (-(t.cpus or 0.0), t.name))
    return fit, why


def _why(why: dict[str, str]) -> str:
    return "; ".join(f"{name}: {reason}" for name, reason in why.items()) or "the cluster has no node types"


# ---------------------------------------------------------------------------------------- the plan

def cell_name(label: str, method: str) -> str:
    return f"{label}:{method}"   # as orchestrator.search.Cell.name


def build_plan(spec, node_types: list[NodeType], cluster: str, warnings: list[str] | None = None) -> dict:
    from orchestrator.scorer_apps import largest_lora_rank

    warnings = list(warnings or [])
    shapes = {m.label: model_shape(m.ref) for m in spec.models}
    for m in spec.models:
        if shapes[m.label] is None:
            warnings.append(f"model {m.label}: size unknown ({m.ref}); memory not checked. Add it to "
                            "orchestrator/gpu_catalog.py MODELS, or use a ref naming its size (e.g. ...-7B)")
        elif shapes[m.label].source != "table":
            warnings.append(f"model {m.label}: {shapes[m.label].params_b:g}B parameters from {shapes[m.label].source}")
    pool, unplaceable = Pool(node_types), []

    scorers = {}
    by_size = sorted(spec.models, key=lambda m: -spec.evaluation_for(m.label).replica_gpus)
    for m in by_size:
        engine = spec.evaluation_for(m.label)
        shape = scorer_shape(engine, shapes[m.label], largest_lora_rank(spec, m.label))
        fit, why = candidates(shape, node_types)
        # a scorer that scales to zero holds GPUs only while trials wait for scores: trials fill them
        held = pool if engine.release_idle_after_s is None else pool.copy()
        landed = [held.place(shape, fit) for _ in range(engine.replicas)]
        problem = None if fit else f"its scorer fits no node type ({_why(why)})"
        if fit and None in landed:
            problem = f"no room for its {engine.replicas} scorer replica(s) on {', '.join(t.name for t in fit)}"
        scorers[m.label] = {"model": m.label, "replicas": engine.replicas, "shape": shape.describe(),
                            "node_type": next((n for n in landed if n), None), "gib_per_gpu": shape.need_gib,
                            "estimate_gib": shape.parts, "problem": problem,
                            "gpus": engine.replicas * shape.gpus, "replica_gpus": shape.gpus,
                            "scales_to_zero": engine.release_idle_after_s is not None}

    cells, trial_shapes = [], {}
    for m, method in spec.cells:
        name = cell_name(m.label, method)
        cfg = spec.training_for(m.label, method).model_copy(update={"method": method})
        shape = trial_shapes[name] = training_shape(cfg, shapes[m.label])
        fit, why = candidates(shape, node_types)
        lands = pool.copy().place(shape, fit)
        problems = [scorers[m.label]["problem"]]
        if not fit:
            problems.append(f"its training fits no node type ({_why(why)})")
        elif lands is None:
            problems.append(f"no room for one trial on {', '.join(t.name for t in fit)} once the scorers hold "
                            "their GPUs")
        problem = "; ".join(p for p in problems if p) or None
        node = next((t for t in fit if t.name == lands), fit[0] if fit else None)
        cost = trial_cost(spec, shapes[m.label], cfg, node)
        cells.append({"cell": name, "model": m.label, "method": method, "trials": spec.trials_per_cell,
                      "training": {"shape": shape.describe(), "node_type": lands, "gib_per_gpu": shape.need_gib,
                                   "gpu_gib": node.gpu_gib if node else None, "estimate_gib": shape.parts},
                      "scoring": {k: scorers[m.label][k] for k in ("shape", "node_type", "gib_per_gpu", "replica_gpus")},
                      "training_gpus": shape.bundles * shape.gpus, "fits": problem is None, "problem": problem,
                      **cost})
        if problem:
            unplaceable.append({"cell": name, "model": m.label, "reason": problem})

    placeable = [c for c in cells if c["fits"]]
    pools = trial_pools(spec, pool, scorers, placeable, trial_shapes)
    holds = pool_holds(pools, placeable, trial_shapes) or pack_trials(spec, pool, placeable, trial_shapes, node_types)
    concurrent = spec.max_concurrent_trials or holds
    return {"spec": spec.name, "cluster": cluster,
            "node_types": [asdict(t) | {"summary": t.describe()} for t in node_types],
            "models": {label: None if s is None else {"params_b": s.params_b, "source": s.source}
                       for label, s in shapes.items()},
            "scorers": [scorers[m.label] for m in spec.models], "cells": cells, "max_concurrent_trials": concurrent,
            "cluster_holds_trials": holds, "concurrency_from": "spec" if spec.max_concurrent_trials else "cluster",
            "pools": pools, "unplaceable": unplaceable, "gpu_hours": gpu_hours(spec, cells, scorers, concurrent),
            "warnings": warnings, "assumptions": ASSUMPTIONS}


ASSUMPTIONS = {"train_seq_tokens": TRAIN_SEQ_TOKENS, "activation_bytes_per_token_layer_hidden": ACTIVATION_BYTES,
               "train_overhead_gib": TRAIN_OVERHEAD_GIB, "scorer_overhead_gib": SCORER_OVERHEAD_GIB,
               "vllm_gpu_fraction": VLLM_GPU_FRACTION, "train_mfu": TRAIN_MFU,
               "train_flops_per_param_token": TRAIN_FLOPS_PER_PARAM_TOKEN, "weights_dtype": "bf16"}


def trial_pools(spec, pool: Pool, scorers: dict, cells: list[dict], trial_shapes: dict[str, Shape]) -> dict:
    """Per node type that trains trials, the GPUs its trials may hold at once (the searcher's budget):
    what the type has at its largest, less the always-on scorers' GPUs, less a reserve for the largest
    scale-to-zero replica that a finished trial's own freed GPUs there cannot hold (a model trained on
    another type, or on fewer GPUs than its replica). Without the reserve, trials filling the type
    would leave such a trial waiting, for as long as a trial there runs, for its score. `reserved_for`
    names the cells whose scores need the reserve: once they are done, trials may hold
    `trial_gpus_once_scored`. Neither exceeds the type's useful_gpus."""
    free = {name: sum(gpus for gpus, _ in nodes) for name, nodes in pool.free.items()}
    reserve = {name: 0.0 for name in free}
    needing: dict[str, list[str]] = {name: [] for name in free}
    for label, s in scorers.items():
        engine = spec.evaluation_for(label)
        if engine.release_idle_after_s is None or s["node_type"] is None or s["problem"]:
            continue
        replica_gpus = s["replica_gpus"]
        own = [c for c in cells if c["model"] == label]
        frees_enough = all(c["training"]["node_type"] == s["node_type"] and
                           trial_shapes[c["cell"]].bundles * trial_shapes[c["cell"]].gpus >= replica_gpus
                           for c in own)
        if not frees_enough:
            reserve[s["node_type"]] = max(reserve[s["node_type"]], replica_gpus)
            needing[s["node_type"]] += [c["cell"] for c in own]
    trains = {c["training"]["node_type"] for c in cells}
    useful = useful_gpus(pool, cells)
    pools = {}
    for name in free.keys() & trains:
        once_scored = min(free[name], useful.get(name, math.inf))
        pools[name] = {"trial_gpus": min(max(0.0, free[name] - reserve[name]), once_scored),
                       "trial_gpus_once_scored": once_scored, "reserved_for_scorers": reserve[name],
                       "reserved_for": needing[name], "useful_gpus": useful.get(name)}
    return pools


def useful_gpus(pool: Pool, cells: list[dict]) -> dict[str, float]:
    """Per node type, the GPUs of the whole nodes that do its trials' work by the sweep's shortest
    possible length (its longest trial, or a type's work over all of that type's GPUs), to the nearest
    whole node. More nodes would end the sweep no sooner and sit mostly idle beside its longest trials
    (the scale simulation measured it: three long trials spread over two A10G nodes kept both up with
    one or two of four GPUs busy). Node types with a trial of unknown cost are not limited."""
    work: dict[str, float] = {}
    longest: dict[str, float] = {}
    for c in cells:
        name = c["training"]["node_type"]
        if c["hours_per_trial"] is None:
            work[name] = math.inf
            continue
        work[name] = work.get(name, 0.0) + c["trials"] * c["gpu_hours_per_trial"]
        longest[name] = max(longest.get(name, 0.0), c["hours_per_trial"])
    costed = {name: w for name, w in work.items() if math.isfinite(w) and w > 0}
    spread = [w / (pool.types[name].gpus * pool.types[name].count) for name, w in costed.items()]
    horizon = max([*longest.values(), *spread], default=0.0)
    out = {}
    for name, w in costed.items():
        node = pool.types[name]
        nodes = min(node.count, max(1, round(w / horizon / node.gpus)))
        largest = max(c["training_gpus"] for c in cells if c["training"]["node_type"] == name)
        out[name] = float(max(nodes * node.gpus, largest))
    return out


def pool_holds(pools: dict, cells: list[dict], trial_shapes: dict[str, Shape]) -> int | None:
    """How many trials the node types' budgets hold at once, each running its smallest trials (the
    searcher keeps each type within its budget, so Tune's global limit must not bind first). None
    when a cell's trials hold no GPU: CPUs bound those (pack_trials)."""
    smallest: dict[str, float] = {}
    for c in cells:
        gpus = trial_shapes[c["cell"]].bundles * trial_shapes[c["cell"]].gpus
        if not gpus:
            return None
        name = c["training"]["node_type"]
        smallest[name] = min(gpus, smallest.get(name, gpus))
    if not smallest:
        return None
    return sum(max(1, int(pools[name]["trial_gpus"] // gpus)) for name, gpus in smallest.items())


def pack_trials(spec, pool: Pool, cells: list[dict], trial_shapes: dict[str, Shape],
                node_types: list[NodeType]) -> int:
    """How many trials the largest cluster holds at once next to the scorers, filled in the searcher's
    order (the cell with the fewest started trials next, by name)."""
    pool = pool.copy()
    started = {c["cell"]: 0 for c in cells}
    fits = {name: candidates(trial_shapes[name], node_types)[0] for name in started}
    while True:
        open_cells = [n for n in started if started[n] < spec.trials_per_cell and fits[n]]
        if not open_cells:
            return sum(started.values())
        name = min(open_cells, key=lambda n: (started[n], n))
        if pool.place(trial_shapes[name], fits[name]) is None:
            fits[name] = []   # full for this cell's shape: try the others
        else:
            started[name] += 1


def trial_cost(spec, shape: ModelShape | None, cfg, node: NodeType | None) -> dict:
    """GPU-hours of one trial's training (see the module docstring) at the middle of the searched mix
    range, and its wall time."""
    if shape is None or node is None or not cfg.gpus_per_worker or node.gpu not in GPUS:
        return {"gpu_hours_per_trial": None, "hours_per_trial": None}
    mix = (spec.search.mix.low + spec.search.mix.high) / 2
    gpu_hours = training_gpu_hours(cfg.model_copy(update={"mix": mix}), shape, node.gpu)
    return {"gpu_hours_per_trial": round(gpu_hours, 3), "hours_per_trial": round(gpu_hours / cfg.workers_per_trial, 3)}


def training_gpu_hours(cfg, shape: ModelShape, gpu: str) -> float:
    """The cost model of one training run on `gpu`s (a key of gpu_catalog.GPUS): its FLOPs at TRAIN_MFU."""
    from trainers.data import calibration_prompts, plan_steps

    steps = plan_steps(cfg, len(calibration_prompts(cfg)), cfg.workers_per_trial)
    flops = TRAIN_FLOPS_PER_PARAM_TOKEN * (shape.active_b or shape.params_b) * 1e9 * steps.n_items * TRAIN_SEQ_TOKENS
    return flops / (GPUS[gpu].bf16_tflops * 1e12 * TRAIN_MFU) / 3600


def gpu_hours(spec, cells: list[dict], scorers: dict, concurrent: int) -> dict:
    costed = [c for c in cells if c["fits"] and c["gpu_hours_per_trial"] is not None]
    training = sum(c["trials"] * c["gpu_hours_per_trial"] for c in costed)
    wall = sum(c["trials"] * c["hours_per_trial"] for c in costed) / max(1, concurrent)
    # always-on replicas hold their GPUs for the whole sweep; those that scale to zero only while
    # scoring, whose work is not modelled
    scorer_gpus = sum(s["gpus"] for s in scorers.values() if s["problem"] is None and not s["scales_to_zero"])
    return {"training": round(training, 1), "scoring": round(scorer_gpus * wall, 1),
            "total": round(training + scorer_gpus * wall, 1), "sweep_hours": round(wall, 1),
            "scorer_gpus": scorer_gpus, "cells_not_costed": [c["cell"] for c in cells if c not in costed]}


def format_plan(plan: dict) -> str:
    lines = [f"Sweep {plan['spec']!r} on {plan['cluster']} at its largest:"]
    lines += [f"  {t['summary']}" for t in plan["node_types"]]
    lines.append("Scorer apps (replicas held for the whole sweep, or only while scoring: 'to zero'):")
    for s in plan["scorers"]:
        where = s["node_type"] or "-"
        gib_note = "  to zero" if s["scales_to_zero"] else ""
        gib = f"{s['gib_per_gpu']:.1f} GiB/GPU" if s["gib_per_gpu"] is not None else "memory not checked"
        lines.append(f"  {s['model']:<16} {s['replicas']} x {s['shape'].split(' x ', 1)[1]:<44} on {where:<12} "
                     f"{gib}{gib_note}{'  ' + s['problem'] if s['problem'] else ''}")
    lines.append("Cells (one trial's training):")
    for c in plan["cells"]:
        t = c["training"]
        gib = "memory not checked" if t["gib_per_gpu"] is None else f"{t['gib_per_gpu']:.1f} GiB/GPU"
        if t["gib_per_gpu"] is not None and t["gpu_gib"]:
            gib = f"{t['gib_per_gpu']:.1f}/{t['gpu_gib']:.1f} GiB/GPU"
        hours = f"{c['gpu_hours_per_trial']:.2f} GPU-h/trial" if c["gpu_hours_per_trial"] is not None else ""
        lines.append(f"  {c['cell']:<20} {t['shape']:<46} on {t['node_type'] or '-':<12} {gib:<22} "
                     f"{'fits' if c['fits'] else 'UNPLACEABLE'}  {hours}")
    h = plan["gpu_hours"]
    lines.append(f"max_concurrent_trials: {plan['max_concurrent_trials']} (the cluster holds "
                 f"{plan['cluster_holds_trials']} trials at once next to the scorers"
                 f"{'; the spec sets it' if plan['concurrency_from'] == 'spec' else ''})")
    lines.append(f"GPU-hours (estimate): training {h['training']}, scorers {h['scoring']} ({h['scorer_gpus']} always-on "
                 f"GPUs held for ~{h['sweep_hours']} h; replicas that scale to zero are not counted), total {h['total']}")
    lines += [f"note: {w}" for w in plan["warnings"]]
    return "\n".join(lines)


def cluster_yaml_in_use(cluster_yaml: str | None, joining: bool) -> str | None:
    """The cluster YAML to plan against: the one given, else (when joining a running cluster) the copy
    `ray up` left on the head node, where a submitted sweep job runs."""
    if cluster_yaml:
        return cluster_yaml
    bootstrap = Path(HEAD_BOOTSTRAP_CONFIG).expanduser()
    return str(bootstrap) if joining and bootstrap.is_file() else None


def plan_for(spec, cluster_yaml: str | None = None) -> dict:
    if cluster_yaml:
        node_types, warnings = load_node_types(cluster_yaml)
        return build_plan(spec, node_types, cluster_yaml, warnings)
    from orchestrator.cluster import concurrency_from_totals

    node_types = local_node_types(spec)
    plan = build_plan(spec, node_types, "this machine (the embedded local Ray)")
    if not spec.max_concurrent_trials:   # what the sweep computes on the embedded cluster it starts
        plan["max_concurrent_trials"] = concurrency_from_totals(spec, node_types[0].cpus, node_types[0].gpus)
    return plan
