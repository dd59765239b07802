"""The training stream: which example each worker sees at each step, built as token ids + sparse targets.

Every example is a sequence (prompt + completion without its final end token) with a sparse next-token
target at each completion position: soft-target calibration examples carry the trie marginals
q(t | prefix) along the sampled value's path; hard-target calibration and replay examples carry one-hot
targets (KL to a one-hot target is exactly cross-entropy). One loss function then serves every kind.
Every completion (value or replay solution) ends with the model's turn terminator
(cft.prompts.turn_terminator), the token its chat turn ends with, which exact scoring also uses.

Data order is a pure function of (seed, stream position): a restarted worker group that resumes at
step s sees exactly the examples an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from cft.output_space import OutputSpace, build_output_space
from cft.prompts import prompt_token_ids, turn_terminator
from cft.splits import TaskPrompt, build_split
from cft.trie import TokenTrie, build_trie
from trainers.config import TrainConfig

MAX_REPLAY_COMPLETION_TOKENS = 512


@dataclass
class Example:
    input_ids: list[int]
    start: int             # sequence position whose logits predict the first completion token
    target_ids: np.ndarray    # [P, K] sparse target token ids per completion position
    target_probs: np.ndarray  # [P, K] their probabilities (0 = padding)
    kind: str              # "calib" | "replay"


@dataclass(frozen=True)
class StepPlan:
    total_steps: int
    global_batch: int       # examples per optimizer step, all workers and micro-steps together
    items_per_epoch: int    # calibration examples in one epoch

    @property
    def n_items(self) -> int:
        return self.total_steps * self.global_batch


def calibration_prompts(cfg: TrainConfig) -> list[TaskPrompt]:
    """The split's prompts, optionally restricted to some families and thinned evenly per family."""
    prompts = build_split(cfg.split, "full", cfg.families)
    if cfg.families is not None:
        missing = set(cfg.families) - {p.family for p in prompts}
        if missing:
            raise ValueError(f"families: not in split {cfg.split!r}: {', '.join(sorted(missing))}")
    if cfg.prompts_per_family is None:
        return prompts
    kept = []
    for fam in dict.fromkeys(p.family for p in prompts):
        rows = [p for p in prompts if p.family == fam]
        idx = np.unique(np.linspace(0, len(rows) - 1, min(cfg.prompts_per_family, len(rows))).astype(int))
        kept += [rows[i] for i in idx]
    return kept


def samples_per_prompt(cfg: TrainConfig) -> int:
    """How often an epoch visits each prompt: once (soft), `hard_samples_per_prompt` times (hard)."""
    return cfg.hard_samples_per_prompt if cfg.method == "hard" else 1


def plan_steps(cfg: TrainConfig, n_prompts: int, world_size: int) -> StepPlan:
    """Steps cover `epochs` passes over the calibration prompts (each visited `samples_per_prompt`
    times per pass) plus the replay that `mix` adds on top (in expectation: replay slots are i.i.d.)."""
    items_per_epoch = n_prompts * samples_per_prompt(cfg)
    calib_items = math.ceil(cfg.epochs * items_per_epoch)
    all_items = math.ceil(calib_items / (1.0 - cfg.mix))
    global_batch = cfg.batch_size * cfg.grad_accum * world_size
    steps = max(1, math.ceil(all_items / global_batch))
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    return StepPlan(steps, global_batch, items_per_epoch)


def replay_problems(cfg: TrainConfig) -> list:
    from cft.arithmetic import generate_problems, load_gsm8k_jsonl
    from cft.gsm8k import gsm8k_replay_problems

    if cfg.replay_jsonl:
        return list(load_gsm8k_jsonl(cfg.replay_jsonl))
    if cfg.replay == "gsm8k":
        return gsm8k_replay_problems(cfg.replay_pool, seed=cfg.seed)
    return list(generate_problems(cfg.replay_pool, seed=cfg.seed))


class TrainingStream:
    """Builds the examples of one run; tries and prompt ids are built lazily, once per prompt."""

    def __init__(self, cfg: TrainConfig, tokenizer, world_size: int, max_len: int = 2048):
        self.cfg, self.tokenizer, self.world_size, self.max_len = cfg, tokenizer, world_size, max_len
        self.chat = cfg.chat
        self.end_id = turn_terminator(tokenizer, self.chat)
        self.prompts = calibration_prompts(cfg)
        self.plan = plan_steps(cfg, len(self.prompts), world_size)
        self._spaces: dict[int, OutputSpace] = {}
        self._tries: dict[int, TokenTrie] = {}
        self._prompt_ids: dict[tuple[str, int], list[int]] = {}

    @cached_property
    def items(self) -> list:
        from cft.mixing import mixed_stream

        return mixed_stream(self.plan.n_items, self.cfg.mix, [p.family for p in self.prompts], self.cfg.seed,
                            copies=samples_per_prompt(self.cfg))

    @cached_property
    def replay(self) -> list:
        return replay_problems(self.cfg) if self.cfg.mix > 0 else []

    def positions(self, step: int, micro: int, rank: int) -> range:
        """Stream positions of one worker's micro-batch."""
        b = self.cfg.batch_size
        first = ((step * self.cfg.grad_accum + micro) * self.world_size + rank) * b
        return range(first, first + b)

    def batch(self, step: int, micro: int, rank: int) -> list[Example]:
        return [self.example(pos) for pos in self.positions(step, micro, rank)]

    def example(self, position: int) -> Example:
        item = self.items[position]
        if item.kind == "replay":
            return self.replay_example(item.index % len(self.replay))
        rng = np.random.default_rng((self.cfg.seed, position))
        index = item.index % len(self.prompts)
        value = int(rng.choice(len(self.space(index)), p=self.space(index).probs))
        return self.calib_example(index, value)

    def space(self, index: int) -> OutputSpace:
        if index not in self._spaces:
            self._spaces[index] = build_output_space(self.prompts[index], self.cfg.num_decimals, self.cfg.max_bins)
        return self._spaces[index]

    def trie(self, index: int) -> TokenTrie:
        if index not in self._tries:
            self._tries[index] = build_trie(self.space(index), self.tokenizer, self.end_id)
        return self._tries[index]

    def prompt_ids(self, kind: str, index: int, text: str) -> list[int]:
        key = (kind, index)
        if key not in self._prompt_ids:
            self._prompt_ids[key] = prompt_token_ids(self.tokenizer, text, self.chat)
        return self._prompt_ids[key]

    def calib_example(self, index: int, value: int) -> Example:
        prompt = self.prompt_ids("calib", index, self.prompts[index].text)
        if self.cfg.method == "soft":
            trie = self.trie(index)
            ids, probs, mask = trie.path_targets([value])
            n = int(mask[0].sum())
            completion = list(trie.sequence(value))
            return Example(prompt + completion[:-1], len(prompt) - 1, ids[0, :n], probs[0, :n], "calib")
        tokens = self.tokenizer(self.space(index).values[value], add_special_tokens=False)["input_ids"]
        return one_hot_example(prompt, list(tokens) + [self.end_id], "calib")

    def replay_example(self, index: int) -> Example:
        problem = self.replay[index]
        prompt = self.prompt_ids("replay", index, problem.question)
        tokens = self.tokenizer(problem.solution, add_special_tokens=False)["input_ids"]
        room = max(1, min(MAX_REPLAY_COMPLETION_TOKENS, self.max_len - len(prompt)))
        completion = (list(tokens) + [self.end_id])[:room]
        return one_hot_example(prompt, completion, "replay")

    def probe(self) -> Example:
        """A fixed example (first prompt, its most likely value) to compare saved and trained models on."""
        return self.calib_example(0, int(np.argmax(self.space(0).probs)))


def one_hot_example(prompt: list[int], completion: list[int], kind: str) -> Example:
    ids = np.asarray(completion, dtype=np.int64)[:, None]
    return Example(prompt + completion[:-1], len(prompt) - 1, ids, np.ones_like(ids, dtype=np.float64), kind)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; targets are placed at the sequence positions that predict them."""
    B = len(examples)
    L = max(len(e.input_ids) for e in examples)
    K = max(e.target_ids.shape[1] for e in examples)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attention = torch.zeros((B, L), dtype=torch.long)
    tgt_ids = torch.zeros((B, L, K), dtype=torch.long)
    tgt_probs = torch.zeros((B, L, K), dtype=torch.float32)
    tgt_mask = torch.zeros((B, L), dtype=torch.bool)
    for i, e in enumerate(examples):
        n, p, k = len(e.input_ids), e.target_ids.shape[0], e.target_ids.shape[1]
        input_ids[i, :n] = torch.tensor(e.input_ids)
        attention[i, :n] = 1
        tgt_ids[i, e.start:e.start + p, :k] = torch.from_numpy(e.target_ids)
        tgt_probs[i, e.start:e.start + p, :k] = torch.from_numpy(e.target_probs).float()
        tgt_mask[i, e.start:e.start + p] = True
    return {"input_ids": input_ids, "attention_mask": attention,
            "target_ids": tgt_ids, "target_probs": tgt_probs, "target_mask": tgt_mask}
