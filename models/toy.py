"""Quickly trained tiny models for tests and the benchmark: a tiny random model (models/tiny.py) taught
to answer given task prompts with support values drawn from their targets, so it puts real mass on the
support and exact and sampled fidelity have something to measure. Full fine-tuning makes a new base
model; `lora=True` trains a LoRA adapter on top of a base instead. Seconds of work, not the project's
trainer (trainers/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cft.output_space import build_output_space
from cft.prompts import prompt_token_ids
from cft.splits import TaskPrompt
from cft.trie import build_trie

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class ToyTraining:
    steps: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    lora: bool = False
    rank: int = 8
    num_decimals: int = 1
    max_bins: int = 32
    seed: int = 0


def train_toy_model(model_dir: str, out_dir: str | Path, prompts: list[TaskPrompt],
                    settings: ToyTraining = ToyTraining()) -> str:
    """Train on (prompt, value + EOS) pairs, values drawn from each prompt's target; save to out_dir
    (a full model with its tokenizer, or an adapter when settings.lora) and return its path."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if settings.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=settings.rank, lora_alpha=2 * settings.rank,
                                                 target_modules=LORA_TARGETS, lora_dropout=0.0))
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
    if not settings.lora:
        tokenizer.save_pretrained(str(out_dir))
    return str(out_dir)


def _examples_of(prompt: TaskPrompt, tokenizer, settings: ToyTraining):
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


def random_adapter(model_dir: str, out_dir: str | Path, seed: int = 0, scale: float = 0.5, rank: int = 8) -> str:
    """A LoRA adapter with random, non-zero B matrices (PEFT initialises B to zero): it moves every score."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, scale)
    model.save_pretrained(str(out_dir))
    return str(out_dir)
