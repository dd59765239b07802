"""What one trial (or one scorer replica) asks Ray for, and the GPU memory it needs per GPU.

The memory model, per GPU (every constant is an estimate; the plan lists the numbers it used):
- training worker: bf16 weights (split over the workers under ZeRO-3) + LoRA weights, gradients and
  Adam state in fp32 (16 bytes a parameter) + activations of one micro-batch without recomputation
  (ACTIVATION_BYTES per token, layer and hidden unit; flash attention, so nothing quadratic) + its
  bf16 logits and their fp32 copy for the loss + TRAIN_OVERHEAD_GIB (CUDA context, NCCL, allocator);
  sequences are TRAIN_SEQ_TOKENS long (a prompt and a number; a replay problem and its solution).
- scorer replica, per tensor-parallel rank: its share of the bf16 weights and of the KV cache for
  max_batch_size sequences of max_model_len tokens + max_loras LoRA slots of the largest rank (vLLM
  reserves them for every linear layer) + SCORER_OVERHEAD_GIB, against vLLM's share of the GPU
  (VLLM_GPU_FRACTION of the GPUs of one rank, gpus_per_replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.gpu_catalog import ModelShape
from orchestrator.scheduling.nodes import NodeType

TRAIN_SEQ_TOKENS = 256
ACTIVATION_BYTES = 34          # Korthikanti et al. 2022, bf16, per token x layer x hidden unit
TRAIN_OVERHEAD_GIB = 1.5
SCORER_OVERHEAD_GIB = 2.0
VLLM_GPU_FRACTION = 0.9        # vLLM's default gpu_memory_utilization
LORA_STATE_BYTES = 16          # fp32 weight + gradient + two Adam moments
VLLM_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # vLLM's slots
GIB = 2 ** 30


@dataclass
class Shape:
    """What one trial (or one scorer replica) asks Ray for, and the GPU memory it needs per GPU."""
    bundles: int                # Train workers (one trial) or 1 (one scorer replica)
    cpus: float                 # per bundle
    gpus: float                 # per bundle
    accelerator_type: str | None
    need_gib: float | None      # per GPU; None: model size unknown
    memory_fraction: float = 1.0   # share of a GPU's memory the shape may use
    parts: dict = field(default_factory=dict)

    @property
    def total_gpus(self) -> float:
        return self.bundles * self.gpus

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
            usable = node.gpu_gib * self.memory_fraction
            if self.need_gib > usable:
                return f"needs {self.need_gib:.1f} GiB per GPU, has {usable:.1f}"
        return None


def lora_params(shape: ModelShape, rank: int, modules: list[str]) -> float:
    dims = {"q_proj": (shape.hidden, shape.q_dim), "k_proj": (shape.hidden, shape.kv_dim),
            "v_proj": (shape.hidden, shape.kv_dim), "o_proj": (shape.q_dim, shape.hidden)}
    # other modules (MLP projections): taken as hidden -> 3 x hidden
    per_layer = sum(sum(dims.get(m, (shape.hidden, 3 * shape.hidden))) for m in modules)
    return rank * per_layer * shape.layers


def _in_gib(parts: dict) -> tuple[dict, float]:
    parts = {k: round(v / GIB, 2) for k, v in parts.items()}
    return parts, round(sum(parts.values()), 2)


def training_shape(cfg, shape: ModelShape | None) -> Shape:
    """One trial's Train workers; `cfg` is the cell's TrainConfig."""
    need, parts = None, {}
    if shape is not None and cfg.gpus_per_worker:
        tokens = cfg.batch_size * TRAIN_SEQ_TOKENS
        shards = cfg.workers_per_trial if cfg.zero_stage == 3 else 1
        parts, need = _in_gib({
            "weights": shape.params_b * 1e9 * 2 / shards,
            "lora_state": lora_params(shape, cfg.lora_r, cfg.lora_target_modules) * LORA_STATE_BYTES,
            "activations": tokens * shape.layers * shape.hidden * ACTIVATION_BYTES,
            "logits": tokens * shape.vocab * (2 + 4),
            "overhead": TRAIN_OVERHEAD_GIB * GIB})
    return Shape(cfg.workers_per_trial, cfg.cpus_per_worker, cfg.gpus_per_worker, cfg.accelerator_type, need,
                 parts=parts)


def scorer_shape(engine, shape: ModelShape | None, lora_rank: int) -> Shape:
    """One scorer replica; `engine` is the model's EngineOptions (sweep settings + its overrides)."""
    need, parts = None, {}
    tp = engine.tensor_parallel_size
    if shape is not None and engine.gpus_per_replica:
        kv_per_token = 2 * shape.layers * shape.kv_dim * 2   # K and V, bf16
        lora = lora_params(shape, lora_rank, VLLM_LORA_MODULES) * 2
        parts, need = _in_gib({
            "weights": shape.params_b * 1e9 * 2 / tp,
            "kv_cache": kv_per_token * engine.max_model_len * engine.max_batch_size / tp,
            "lora_slots": engine.max_loras * lora / tp,
            "overhead": SCORER_OVERHEAD_GIB * GIB})
    fraction = VLLM_GPU_FRACTION * min(1.0, engine.gpus_per_replica or 1.0)
    return Shape(1, engine.cpus_per_replica, engine.replica_gpus, engine.accelerator_type, need, fraction, parts)
