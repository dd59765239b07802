"""The one interface every inference engine implements, and the requests it takes.

Requests carry token ids (not text) so every engine scores exactly the same tokens, and each request
names its own LoRA adapter (None: the base model), so one engine call can mix trials' adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class ScoreRequest:
    """Teacher-forced scoring: log P(continuation | prompt) for each continuation."""
    prompt_ids: list[int]
    continuations: list[list[int]]
    adapter: str | None = None


@dataclass
class GenerateRequest:
    """n independent samples (temperature 0: greedy) from one prompt; no top-k / top-p."""
    prompt_ids: list[int]
    n: int = 1
    temperature: float = 1.0
    max_tokens: int = 32
    seed: int | None = None
    adapter: str | None = None


@dataclass
class TopProbsRequest:
    """The k largest next-token probabilities after the prompt, in descending order."""
    prompt_ids: list[int]
    k: int = 64
    adapter: str | None = None


@dataclass
class EngineInfo:
    engine: str
    model: str
    vocab_size: int
    loaded_adapters: list[str] = field(default_factory=list)


class Engine(Protocol):
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]: ...

    def generate(self, requests: list[GenerateRequest]) -> list[list[str]]: ...

    def top_probs(self, requests: list[TopProbsRequest]) -> list[list[float]]: ...

    def info(self) -> EngineInfo: ...


def terminator_ids(model: str, tokenizer) -> list[int]:
    """Every token that ends a completion: the generation config's `eos_token_id` (an int or a list;
    Gemma-3-it lists `<eos>` and `<end_of_turn>`) plus the tokenizer's EOS, so both engines stop on the
    same set. Falls back to the model config's `eos_token_id` when there is no generation config."""
    from transformers import AutoConfig, GenerationConfig

    try:
        configured = GenerationConfig.from_pretrained(model).eos_token_id
    except OSError:   # no generation_config.json
        configured = getattr(AutoConfig.from_pretrained(model), "eos_token_id", None)
    ids = configured if isinstance(configured, (list, tuple)) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return sorted({int(i) for i in ids if i is not None})


def completion_text(tokenizer, tokens: list[int], terminators) -> str | None:
    """The text before the first terminator, or None when the completion has none (it ran out of
    tokens: truncated, which the callers count as invalid)."""
    ends = [i for i, tok in enumerate(tokens) if tok in terminators]
    if not ends:
        return None
    return tokenizer.decode(tokens[:ends[0]], skip_special_tokens=True)
