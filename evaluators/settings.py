"""The evaluators' settings, each declared once.

- EngineOptions: how a scorer app runs (engine, replicas and their resources, engine limits).
- ScorerSettings: EngineOptions plus the base model, its chat options and the app's name: what one
  Serve scorer app (evaluators.service) is built from.
- EvalSettings: what to evaluate (evaluations, splits, sizes, seed).
- EvaluationConfig: EngineOptions and EvalSettings together: the sweep spec's `evaluation:` section and
  the flags of `python -m evaluators.score`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cft.families import FamilyNames
from cft.prompts import ChatOptions
from cft.splits import EVAL_SPLITS, PAPER_EVAL_SPLITS
from evaluators.registry import ENGINES, EVALUATIONS, check_name


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EngineOptions(_Settings):
    """Scorer app settings (evaluators.settings.EngineOptions)."""
    engine: str = Field("vllm", description=f"inference engine: {', '.join(ENGINES)}")
    replicas: int = Field(1, ge=1, le=1024, description="scorer replicas per base model")
    cpus_per_replica: float = Field(1.0, gt=0, le=1024)
    torch_threads: int | None = Field(
        None, ge=1, le=1024, description="the HF engine's torch CPU threads (default: Ray's, one per reserved "
        "CPU); where scoring and training take turns on one box, its cores")
    gpus_per_replica: float = Field(0.0, ge=0, le=64)
    max_loras: int = Field(4, ge=1, le=256, description="adapters an engine holds at once")
    max_lora_rank: int = Field(16, ge=1, le=1024, description="largest LoRA rank the engine accepts")
    max_model_len: int = Field(512, ge=32, le=1_048_576, description="prompt + completion tokens")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: float32 on CPU, bfloat16 on GPU")
    kv_cache_gib: int = Field(1, ge=1, le=1024, description="vLLM's CPU KV cache (VLLM_CPU_KVCACHE_SPACE)")
    # bounds: the evaluations ask for at most 128 top tokens (vLLM's cap per request) and the paper's
    # sweeps run 16 requests of 8 per replica; 100x that is still no reason to exhaust a replica
    max_logprobs: int = Field(256, ge=1, le=100_000, description="most top tokens a request may ask for")
    max_ongoing_requests: int = Field(16, ge=1, le=10_000, description="per replica; concurrent ones share a batch")
    max_batch_size: int = Field(8, ge=1, le=4096, description="requests merged into one engine call")
    tensor_parallel_size: int = Field(
        1, ge=1, le=64, description="GPUs of one node a replica's vLLM engine shards the model over; "
        "the replica holds tensor_parallel_size x gpus_per_replica GPUs")
    accelerator_type: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=64,
        description="GPU type the replicas must run on (Ray's accelerator_type: A10G, A100, H100, ...)")
    release_idle_after_s: float | None = Field(
        None, ge=0, le=86_400, description="scale the replicas to zero after this many seconds without a "
        "request, so they hold their GPUs only while trials are scored (the next request starts one again, "
        "loading the model); unset: the replicas are held for the whole sweep")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        return check_name("engine", name, ENGINES)

    @model_validator(mode="after")
    def _whole_gpus_per_rank(self):
        if self.tensor_parallel_size > 1 and self.gpus_per_replica != int(self.gpus_per_replica):
            raise ValueError(f"tensor_parallel_size: each of the {self.tensor_parallel_size} tensor-parallel ranks "
                             f"needs whole GPUs, but gpus_per_replica is {self.gpus_per_replica}")
        return self

    @property
    def replica_gpus(self) -> float:
        """GPUs one replica holds: gpus_per_replica for each tensor-parallel rank."""
        return self.gpus_per_replica * self.tensor_parallel_size


class ScorerSettings(EngineOptions):
    """One scorer app: a base model served by `replicas` replicas of one engine."""
    model: str = Field(min_length=1, max_length=4096, description="base model: local path or HF id")
    chat: ChatOptions = ChatOptions()
    app_name: str = Field("cft-scorer", pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)

    @property
    def route_prefix(self) -> str:
        return "/" + self.app_name


class EvalSettings(_Settings):
    """Evaluation settings (evaluators.settings.EvalSettings)."""
    evals: list[str] = Field(["sampled", "gsm8k"], min_length=1, max_length=64,   # what the default objectives read
                             description=f"evaluations to run: {', '.join(EVALUATIONS)}")
    splits: list[str] = Field(list(PAPER_EVAL_SPLITS), min_length=1, max_length=64, description=f"fidelity splits: {', '.join(EVAL_SPLITS)}")
    selection: Literal["selected", "full"] = Field("selected", description="the paper's selected prompts or the full grid")
    families: FamilyNames | None = Field(None, description="restrict the fidelity splits to these families")
    num_decimals: int = Field(5, ge=0, le=8)
    max_bins: int = Field(1001, ge=2, le=100_000)
    samples_per_prompt: int = Field(1000, ge=1, le=100_000, description="sampled fidelity")
    arithmetic_problems: int = Field(50, ge=1, le=100_000)
    seed: int = Field(0, ge=0, lt=2**32)
    # *_max_tokens: the longest answer an evaluation reads is a GSM8K solution (~300 tokens); 32,768
    # is more than any served context the sweeps use (max_model_len caps each request again)
    sample_max_tokens: int = Field(32, ge=1, le=32_768, description="a number longer than this is invalid anyway")
    arithmetic_max_tokens: int = Field(256, ge=1, le=32_768)
    openrandom_prompts: int | None = Field(None, ge=1, le=102, description="default: all 102")
    openrandom_samples: int = Field(100, ge=1, le=100_000)   # the paper draws 100
    top_p: float = Field(0.9, gt=0, le=1, description="nucleus of the first-token support size")
    gsm8k_items: int = Field(100, ge=2, le=1319, description="fixed GSM8K test items for the capability axis")
    gsm8k_shots: int = Field(0, ge=0, le=8, description="worked GSM8K train examples before each question")
    gsm8k_generate: bool = Field(False, description="also greedy accuracy (seconds per item on CPU)")
    gsm8k_max_tokens: int = Field(256, ge=1, le=32_768)
    mcq_questions: int = Field(1000, ge=1, le=100_000)   # the paper asks 1,000
    mcq_max_tokens: int = Field(160, ge=1, le=32_768)
    chunk_size: int = Field(8, ge=1, le=4096, description="prompts per request to the service")

    @field_validator("evals")
    @classmethod
    def _known_evals(cls, names: list[str]) -> list[str]:
        for name in names:
            check_name("evaluation", name, EVALUATIONS)
        if len(set(names)) != len(names):
            raise ValueError("an evaluation is listed twice")
        return names

    @field_validator("splits")
    @classmethod
    def _evaluation_splits(cls, splits: list[str]) -> list[str]:
        bad = [s for s in splits if s not in EVAL_SPLITS]
        if bad:
            raise ValueError(f"unknown or training split(s) {bad}; evaluation splits: {', '.join(EVAL_SPLITS)}")
        return splits


class EvaluationConfig(EngineOptions, EvalSettings):
    """How to score (EngineOptions) and what (EvalSettings), as one flat section."""

    def eval_settings(self) -> EvalSettings:
        return EvalSettings.model_validate(self.model_dump(include=set(EvalSettings.model_fields)))

    def scorer(self, **app: object) -> ScorerSettings:
        """The settings of one scorer app; `app` names its model, chat and app_name (and overrides)."""
        return ScorerSettings.model_validate(self.model_dump(include=set(EngineOptions.model_fields)) | app)

