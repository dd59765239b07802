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
