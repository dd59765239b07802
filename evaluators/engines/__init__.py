"""Inference engines behind one interface (base.Engine): vLLM and HF transformers."""

from __future__ import annotations

from evaluators.engines.adapters import AdapterNotFound, resolve_adapter
from evaluators.engines.base import Engine, EngineInfo, GenerateRequest, ScoreRequest, TopProbsRequest


def make_engine(settings) -> Engine:
    """Build the engine a ScorerSettings names (imports vLLM or torch only when needed)."""
    if settings.engine == "vllm":
        from evaluators.engines.vllm_engine import VLLMEngine

        return VLLMEngine(settings.model, max_loras=settings.max_loras, max_lora_rank=settings.max_lora_rank,
                          max_model_len=settings.max_model_len, dtype=settings.dtype,
                          kv_cache_gib=settings.kv_cache_gib, max_logprobs=settings.max_logprobs)
    if settings.engine == "hf":
        from evaluators.engines.hf_engine import HFEngine

        return HFEngine(settings.model, max_loras=settings.max_loras, dtype=settings.dtype)
    raise ValueError(f"unknown engine {settings.engine!r}; known: vllm, hf")


__all__ = ["AdapterNotFound", "Engine", "EngineInfo", "GenerateRequest", "ScoreRequest", "TopProbsRequest",
           "make_engine", "resolve_adapter"]
