"""The HF transformers engine: PEFT adapters with an LRU cache, for hosts or models vLLM can't serve.

Teacher-forced scoring runs the prompt once and reuses its KV cache for the whole candidate batch.
Calls are not thread-safe; the Serve replica runs one engine call at a time.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import contextmanager

import torch

from evaluators.engines.adapters import resolve_adapter
from evaluators.engines.base import (EngineInfo, GenerateRequest, ScoreRequest, TopProbsRequest, completion_text,
                                     terminator_ids)

CANDIDATE_BATCH = 256   # candidates per forward pass over the shared prompt cache
SAMPLE_BATCH = 128      # sequences per generate() call


class HFEngine:
    def __init__(self, model: str, max_loras: int = 4, dtype: str = "auto", torch_threads: int | None = None,
                 **_ignored):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.name, self.max_loras = model, max_loras
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = {"auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
                       "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id   # generate() pads with it
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.terminators = terminator_ids(model, self.tokenizer)   # generation stops at any of them
        self.peft = None                       # the PeftModel wrapping self.model, once an adapter loads
        self.loaded: OrderedDict[str, str] = OrderedDict()   # adapter key -> path, least recent first

    # --- adapters --------------------------------------------------------------------------------

    @contextmanager
    def _model_for(self, adapter: str | None):
        """The model to call: the base (any adapter disabled) or the given adapter, loaded on demand."""
        if adapter is None:
            if self.peft is None:
                yield self.model
            else:
                with self.peft.disable_adapter():
                    yield self.peft
            return
        ref = resolve_adapter(adapter)
        if ref.key not in self.loaded:
            self._load(ref)
        self.loaded.move_to_end(ref.key)
        self.peft.set_adapter(ref.key)
        yield self.peft

    def _load(self, ref) -> None:
        from peft import PeftModel

        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, ref.path, adapter_name=ref.key).eval()
        else:
            self.peft.load_adapter(ref.path, adapter_name=ref.key)
        self.loaded[ref.key] = ref.path
        while len(self.loaded) > self.max_loras:
            oldest, _ = self.loaded.popitem(last=False)
            self.peft.set_adapter(ref.key)
            self.peft.delete_adapter(oldest)

    # --- the engine interface --------------------------------------------------------------------

    def _each(self, requests: list, run_one) -> list:
        """run_one(model, request) for each request, on the model its adapter names."""
        results = []
        for req in requests:
            with self._model_for(req.adapter) as model:
                results.append(run_one(model, req))
        return results

    @torch.inference_mode()
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        return self._each(requests, self._score_one)

    def _score_one(self, model, req: ScoreRequest) -> list[float]:
        prompt = torch.tensor([req.prompt_ids], device=self.device)
        out = model(input_ids=prompt, use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        totals: list[float] = []
        for start in range(0, len(req.continuations), CANDIDATE_BATCH):
            chunk = req.continuations[start:start + CANDIDATE_BATCH]
            totals += self._score_chunk(model, out.past_key_values, first, chunk)
        return totals

    def _score_chunk(self, model, prompt_cache, first, chunk: list[list[int]]) -> list[float]:
        width = max(len(c) for c in chunk)
        # Right padding: under causal attention no real token sees the padding after it.
        ids = torch.tensor([c + [0] * (width - len(c)) for c in chunk], device=self.device)
        cache = copy.deepcopy(prompt_cache)
        cache.batch_repeat_interleave(len(chunk))
        logp = torch.log_softmax(model(input_ids=ids, past_key_values=cache).logits.float(), -1)
        # token j of a continuation is predicted by position j-1 (token 0 by the prompt's last position)
        picked = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        lengths = torch.tensor([len(c) for c in chunk], device=self.device)
        mask = torch.arange(1, width, device=self.device)[None] < lengths[:, None]
        return (first[ids[:, 0]] + (picked * mask).sum(-1)).tolist()

    @torch.inference_mode()
    def generate(self, requests: list[GenerateRequest]) -> list[list[str | None]]:
        return self._each(requests, self._generate_one)

    def _generate_one(self, model, req: GenerateRequest) -> list[str | None]:
        if req.seed is not None:
            torch.manual_seed(req.seed)
        prompt = torch.tensor([req.prompt_ids], device=self.device)
        if req.temperature <= 0:   # greedy: one sequence, repeated
            return self._sample(model, prompt, req, 1, dict(do_sample=False)) * req.n
        sampling = dict(do_sample=True, temperature=req.temperature, top_k=0, top_p=1.0)
        texts: list[str | None] = []
        for start in range(0, req.n, SAMPLE_BATCH):
            texts += self._sample(model, prompt, req, min(SAMPLE_BATCH, req.n - start), sampling)
        return texts

    def _sample(self, model, prompt, req: GenerateRequest, count: int, sampling: dict) -> list[str | None]:
        # The prompt is run once and its KV cache copied to every row: num_return_sequences would run
        # it once per row, which costs more than the short completions themselves.
        rows = prompt.expand(count, -1)
        out = model.generate(
            input_ids=rows, attention_mask=torch.ones_like(rows), past_key_values=self._prompt_cache(model, prompt, count),
            max_new_tokens=req.max_tokens, eos_token_id=self.terminators, pad_token_id=self.pad_id,
            **sampling)
        return [completion_text(self.tokenizer, row[prompt.shape[1]:].tolist(), self.terminators) for row in out]

    def _prompt_cache(self, model, prompt, count: int):
        """The KV cache of all but the prompt's last token (generate runs that one), repeated per row."""
        if prompt.shape[1] < 2:
            return None
        cache = model(input_ids=prompt[:, :-1], use_cache=True).past_key_values
        cache.batch_repeat_interleave(count)
        return cache

    @torch.inference_mode()
    def top_probs(self, requests: list[TopProbsRequest]) -> list[list[float]]:
        return self._each(requests, self._top_probs_one)

    def _top_probs_one(self, model, req: TopProbsRequest) -> list[float]:
        logits = model(input_ids=torch.tensor([req.prompt_ids], device=self.device)).logits[0, -1]
        probs = torch.softmax(logits.float(), -1)
        return probs.topk(min(req.k, probs.numel())).values.tolist()

    def info(self) -> EngineInfo:
        return EngineInfo("hf", self.name, len(self.tokenizer), list(self.loaded.values()))
