"""Scorer: the blocking client every evaluation calls, over a Serve DeploymentHandle or a local engine.

Over a handle, a list of requests is cut into chunks sent concurrently (so they spread across the
replicas); a chunk whose replica dies mid-request is sent again (the requests are idempotent: scoring is
deterministic and sampling is seeded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from cft.prompts import ChatOptions, prompt_token_ids
from evaluators.engines.base import GenerateRequest, ScoreRequest, TopProbsRequest
from evaluators.settings import ScorerSettings

log = logging.getLogger(__name__)


def _retryable() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rx
    from ray.serve.exceptions import DeploymentUnavailableError

    return rx.RayActorError, rx.ActorUnavailableError, DeploymentUnavailableError


class Scorer:
    def __init__(self, target: Any, chunk_size: int = 8, retries: int = 3):
        """target: a DeploymentHandle of evaluators.service, or an engine (evaluators.engines)."""
        self.target, self.chunk_size, self.retries = target, chunk_size, retries
        self.remote = hasattr(target, "options") and hasattr(target, "deployment_name")
        self.progress = None   # a tqdm bar counting request chunks, set by evaluate(progress=True)

    # --- model facts -----------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ScorerSettings:
        """The scorer app's settings; a local engine has its model's and default chat options."""
        if self.remote:
            return self.target.settings.remote().result()
        return getattr(self.target, "settings", None) or ScorerSettings(model=self.target.name)

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.settings.model)

    @property
    def chat(self) -> ChatOptions:
        return self.settings.chat

    def prompt_ids(self, user_text: str) -> list[int]:
        return prompt_token_ids(self.tokenizer, user_text, self.chat)

    # --- the engine interface --------------------------------------------------------------------

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        return self._call("score", requests)

    def generate(self, requests: list[GenerateRequest]) -> list[list[str | None]]:
        return self._call("generate", requests)

    def top_probs(self, requests: list[TopProbsRequest]) -> list[list[float]]:
        return self._call("top_probs", requests)

    def _call(self, method: str, requests: list) -> list:
        if not self.remote:
            return getattr(self.target, method)(requests)
        chunks = [requests[i:i + self.chunk_size] for i in range(0, len(requests), self.chunk_size)]
        pending = [self._send(method, c) for c in chunks]
        if self.progress is not None:
            self.progress.total += len(chunks)
        results = []
        for chunk, response in zip(chunks, pending):
            results += self._collect(method, chunk, response)
            if self.progress is not None:
                self.progress.update(1)
        return results

    def _send(self, method: str, chunk: list):
        return getattr(self.target, method).remote(chunk)

    def _collect(self, method: str, chunk: list, response) -> list:
        return result_resent_if_lost(lambda: self._send(method, chunk), self.retries, response,
                                     what=f"{len(chunk)} requests")


def result_resent_if_lost(send: Callable[[], Any], retries: int = 3, response=None, what: str = "the request"):
    """The result of a handle call (`send()`, or `response` already sent), sent again up to `retries`
    times when its replica is lost (its node died, Serve is replacing it)."""
    response = response if response is not None else send()
    for attempt in range(retries + 1):
        try:
            return response.result()
        except _retryable() as err:
            if attempt == retries:
                raise
            log.warning("scorer replica lost (%s); resending %s", type(err).__name__, what)
            time.sleep(0.5 * (attempt + 1))
            response = send()
    raise AssertionError("unreachable")


def as_scorer(target: Any, chunk_size: int = 8) -> Scorer:
    return target if isinstance(target, Scorer) else Scorer(target, chunk_size=chunk_size)
