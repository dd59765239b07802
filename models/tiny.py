"""A tiny random-init Llama chat model with its own tokenizer, built offline in well under a second.

Tests, the smoke sweep and benchmarks use it: nothing is downloaded. The tokenizer is a real
`PreTrainedTokenizerFast` (BPE over printable ASCII with digit-pair merges, so numbers tokenize into
several tokens and "1" is a strict prefix of "10"), with a chat template, BOS, EOS and PAD.
"""

from __future__ import annotations

import string
from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\t\n\r\x0b\x0c"))
    pairs = [a + b for a in string.digits for b in string.digits]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars + ["\n"] + pairs)}
    merges = [(a, b) for a in string.digits for b in string.digits]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        chat_template=CHAT_TEMPLATE, model_max_length=2048,
    )


def build_tiny_model(out_dir: str | Path, seed: int = 0, hidden_size: int = 128, layers: int = 2) -> Path:
    """Write a tiny Llama (random init, ~0.3M params) and its tokenizer to out_dir; return the path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2, head_dim=hidden_size // 2,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # like Gemma-3-it's: generation stops at EOS or at the chat template's turn end <|end|>
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
