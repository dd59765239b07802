"""The cost model: GPU-hours of a trial and of a sweep.

A LoRA trial costs TRAIN_FLOPS_PER_PARAM_TOKEN x (active) parameters x tokens FLOPs (tokens: the
trainer's own step count at the middle of the searched mix range, times TRAIN_SEQ_TOKENS) at TRAIN_MFU
of the GPU's peak. Always-on scorer replicas hold their GPUs for the whole sweep, whose length is taken
as the trials' summed wall time divided by the concurrency; evaluation work itself (and so what scorers
that scale to zero hold) is not modelled."""

from __future__ import annotations

from orchestrator.gpu_catalog import GPUS, ModelShape
from orchestrator.scheduling.nodes import NodeType
from orchestrator.scheduling.shapes import TRAIN_SEQ_TOKENS

TRAIN_FLOPS_PER_PARAM_TOKEN = 4   # forward 2 + backward through the frozen weights 2 (LoRA's own: ~0)
TRAIN_MFU = 0.3


def training_gpu_hours(cfg, shape: ModelShape, gpu: str) -> float:
    """One training run on `gpu`s (a key of gpu_catalog.GPUS): its FLOPs at TRAIN_MFU."""
    from trainers.data import calibration_prompts, plan_steps

    steps = plan_steps(cfg, len(calibration_prompts(cfg)), cfg.workers_per_trial)
    flops = TRAIN_FLOPS_PER_PARAM_TOKEN * (shape.active_b or shape.params_b) * 1e9 * steps.n_items * TRAIN_SEQ_TOKENS
    return flops / (GPUS[gpu].bf16_tflops * 1e12 * TRAIN_MFU) / 3600


def trial_cost(mix_mid: float, shape: ModelShape | None, cfg, node: NodeType | None) -> tuple[float | None, float | None]:
    """GPU-hours of one trial's training at the middle of the searched mix range, and its wall hours
    (None, None where the model's size or the GPU is unknown)."""
    if shape is None or node is None or not cfg.gpus_per_worker or node.gpu not in GPUS:
        return None, None
    gpu_hours = training_gpu_hours(cfg.model_copy(update={"mix": mix_mid}), shape, node.gpu)
    return round(gpu_hours, 3), round(gpu_hours / cfg.workers_per_trial, 3)
