"""Loading the model to train: any HF causal LM by id or local path, with a LoRA adapter or in full."""

from __future__ import annotations

import torch

from trainers.config import TrainConfig


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: TrainConfig, path: str, dtype: torch.dtype | None = None):
    """The base model in `dtype` (default: bf16 where cfg.frozen_bf16, else fp32), with a LoRA adapter
    in fp32 (PEFT upcasts it) when cfg.lora.

    Under ZeRO-3 the weights are loaded partitioned (each rank holds only its shard, never the full
    model): transformers runs from_pretrained under deepspeed.zero.Init while an HfDeepSpeedConfig of
    the run's DeepSpeed config is alive. The model keeps it alive until DeepSpeed takes over."""
    from transformers import AutoModelForCausalLM

    if dtype is None:
        dtype = torch.bfloat16 if cfg.frozen_bf16 else torch.float32
    zero3 = zero3_init_config(cfg) if cfg.zero_stage == 3 else None
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model._cft_zero3_init = zero3
    if not cfg.lora:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_target_modules))
    return get_peft_model(model, lora, autocast_adapter_dtype=True)   # the adapter trains in fp32


def zero3_init_config(cfg: TrainConfig):
    """transformers' switch for partitioned loading (a weakly referenced global: keep the object)."""
    import deepspeed
    import torch.distributed as dist
    from transformers.integrations import HfDeepSpeedConfig

    from trainers.deepspeed_config import build_deepspeed_config

    world = 1
    if dist.is_available() and dist.is_initialized():
        # zero.Init checks the batch size against deepspeed.comm's world size, which is 1 until
        # DeepSpeed wraps the process group Ray Train already made (deepspeed.initialize would, later)
        deepspeed.init_distributed(dist_backend=dist.get_backend())
        world = dist.get_world_size()
    return HfDeepSpeedConfig(build_deepspeed_config(cfg, world))


def param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and norm weights (as HF Trainer does)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
