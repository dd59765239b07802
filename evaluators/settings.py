"""Settings of a scorer application (one per base model) and of an evaluation run."""

from __future__ import annotations

from dataclasses import dataclass, field

ENGINES = ("vllm", "hf")
EVALS = ("fidelity", "sampled", "arithmetic", "openrandom", "mcq")


@dataclass
class ScorerSettings:
    model: str                      # local path or HF id (base model)
    engine: str = "vllm"            # "vllm" | "hf"
    num_replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_loras: int = 4
    max_lora_rank: int = 16
    max_model_len: int = 512
    chat: dict = field(default_factory=dict)   # cft.prompts.ChatOptions kwargs
    app_name: str = "cft-scorer"
    dtype: str = "auto"             # "auto": float32 on CPU, bfloat16 on GPU
    kv_cache_gib: int = 1           # vLLM's CPU KV cache (VLLM_CPU_KVCACHE_SPACE)
    max_logprobs: int = 256         # most top tokens a request may ask for (first-token support size)
    max_ongoing_requests: int = 16  # per replica; concurrent requests are batched into one engine call
    max_batch_size: int = 8         # requests merged into one engine call

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if self.num_replicas < 1:
            raise ValueError("num_replicas must be >= 1")

    @property
    def route_prefix(self) -> str:
        return "/" + self.app_name


@dataclass
class EvalSettings:
    evals: tuple[str, ...] = ("fidelity", "arithmetic")
    splits: tuple[str, ...] = ("test_unseen_params", "test_ood_family")
    selection: str = "selected"
    num_decimals: int = 5
    max_bins: int = 1001
    samples_per_prompt: int = 1000
    arithmetic_problems: int = 50
    seed: int = 0
    families: tuple[str, ...] | None = None   # restrict the fidelity splits to these families
    sample_max_tokens: int = 32               # a number longer than this is invalid anyway
    arithmetic_max_tokens: int = 256
    openrandom_prompts: int | None = None     # None: all 102
    openrandom_samples: int = 100
    top_p: float = 0.9                        # nucleus of the first-token support size
    mcq_questions: int = 1000
    mcq_max_tokens: int = 160
    chunk_size: int = 8                       # prompts per request to the service

    def __post_init__(self):
        self.evals = tuple(self.evals)
        self.splits = tuple(self.splits)
        unknown = [e for e in self.evals if e not in EVALS]
        if unknown:
            raise ValueError(f"unknown eval(s) {', '.join(unknown)}; known: {', '.join(EVALS)}")
        from cft.splits import SELECTIONS, SPLITS

        bad = [s for s in self.splits if s not in SPLITS]
        if bad:
            raise ValueError(f"unknown split(s) {', '.join(bad)}; known: {', '.join(SPLITS)}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; known: {', '.join(SELECTIONS)}")
