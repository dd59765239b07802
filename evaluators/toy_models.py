"""A quickly trained LoRA adapter for tests and the benchmark: it teaches a tiny model (models/tiny.py)
to answer given task prompts with support values drawn from their targets, so the model puts real mass
on the support and exact and sampled fidelity have something to measure. Minutes of work on a real
model are seconds here; this is a fixture, not the project's trainer (trainers/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cft.output_space import build_output_space
from cft.prompts import prompt_token_ids
from cft.splits import TaskPrompt
from cft.trie import build_trie

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ToyAdapterSettings:
    steps: int = 120
    batch_size: int = 32
    lr: float = 1e-2
    rank: int = 8
    num_decimals: int = 1
    max_bins: int = 64
    seed: int = 0


def train_toy_adapter(model_dir: str, out_dir: str | Path, prompts: list[TaskPrompt],
                      settings: ToyAdapterSettings = ToyAdapterSettings()) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(r=settings.rank, lora_alpha=2 * settings.rank, target_modules=TARGETS,
                                      lora_dropout=0.0))
    examples = [_examples_of(p, tokenizer, settings) for p in prompts]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    model.train()
    for _ in range(settings.steps):
        batch = [_draw(examples[rng.integers(len(examples))], rng) for _ in range(settings.batch_size)]
        loss = _loss(model, batch, tokenizer.pad_token_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(str(out_dir))
    return str(out_dir)


def _examples_of(prompt: TaskPrompt, tokenizer, settings: ToyAdapterSettings):
    space = build_output_space(prompt, settings.num_decimals, settings.max_bins)
    trie = build_trie(space, tokenizer)
    return prompt_token_ids(tokenizer, prompt.text), trie, space.probs


def _draw(example, rng) -> tuple[list[int], list[int]]:
    ids, trie, probs = example
    return ids, list(trie.sequence(int(rng.choice(len(probs), p=probs))))


def _loss(model, batch, pad_id: int):
    import torch

    width = max(len(p) + len(c) for p, c in batch)
    inputs = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    for row, (prompt, completion) in enumerate(batch):
        seq = prompt + completion
        inputs[row, :len(seq)] = torch.tensor(seq)
        labels[row, len(prompt):len(seq)] = torch.tensor(completion)
    return model(input_ids=inputs, labels=labels).loss
