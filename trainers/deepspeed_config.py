"""The DeepSpeed config of a run, built from its settings."""

from __future__ import annotations

from trainers.config import TrainConfig


def build_deepspeed_config(cfg: TrainConfig, world_size: int) -> dict:
    zero: dict = {"stage": cfg.zero_stage}
    if cfg.zero_stage == 3:
        # lets rank 0 gather the full weights from the shards when the model is saved
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.batch_size * cfg.grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip or 0.0,   # DeepSpeed: 0 turns clipping off
        "zero_optimization": zero,
        "bf16": {"enabled": bool(cfg.use_gpu)},  # fp32 on CPU
        # we pass a torch AdamW: ZeRO would otherwise refuse it, and a DeepSpeed-named optimizer
        # costs a ~50 s JIT build on CPU
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
