"""Inference engines behind one interface (base.Engine): vLLM and HF transformers (evaluators.registry)."""

from __future__ import annotations

from evaluators.engines.adapters import AdapterNotFound, resolve_adapter
from evaluators.engines.base import Engine, EngineInfo, GenerateRequest, ScoreRequest, TopProbsRequest


def make_engine(settings) -> Engine:
    """Build the engine a ScorerSettings names (imports vLLM or torch only then)."""
    from evaluators.registry import engine_class

    options = dict(max_loras=settings.max_loras, dtype=settings.dtype)
    if settings.engine == "vllm":
        options |= dict(max_lora_rank=settings.max_lora_rank, max_model_len=settings.max_model_len,
                        kv_cache_gib=settings.kv_cache_gib, max_logprobs=settings.max_logprobs,
                        tensor_parallel_size=settings.tensor_parallel_size)
    else:
        options |= dict(torch_threads=settings.torch_threads)
    return engine_class(settings.engine)(settings.model, **options)


__all__ = ["AdapterNotFound", "Engine", "EngineInfo", "GenerateRequest", "ScoreRequest", "TopProbsRequest",
           "make_engine", "resolve_adapter"]
