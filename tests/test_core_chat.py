"""The chat layer (cft/prompts.py): the forced assistant prefix and the turn terminator, checked on
fixture chat templates in the styles of the paper's model families (built offline, nothing downloaded),
and reaching training ids (trainers/data.py) and exact scoring (evaluators/fidelity.py) alike."""

import numpy as np
import pytest
import torch

from cft.prompts import ChatOptions, prompt_token_ids, render_chat, turn_terminator

GEMMA = ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
         "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n"
         "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
          "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
# harmony (gpt-oss): a finished last answer ends with <|return|>, earlier turns with <|end|>
HARMONY = ("{% for m in messages %}{% if m['role'] == 'assistant' %}<|start|>assistant<|channel|>final<|message|>"
           "{{ m['content'] }}{{ '<|return|>' if loop.last and not add_generation_prompt else '<|end|>' }}"
           "{% else %}<|start|>{{ m['role'] }}<|message|>{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
           "{% if add_generation_prompt %}<|start|>assistant{% endif %}")
HARMONY_PREFIX = "<|channel|>final<|message|>"
PLAIN = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"

STYLES = {  # template, extra special tokens, EOS, expected terminator
    "gemma": (GEMMA, ["<start_of_turn>", "<end_of_turn>", "<eos>"], "<eos>", "<end_of_turn>"),
    "chatml": (CHATML, ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], "<|endoftext|>", "<|im_end|>"),
    "llama3": (LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
               "<|end_of_text|>", "<|eot_id|>"),
    "harmony": (HARMONY, ["<|start|>", "<|channel|>", "<|message|>", "<|return|>"], "<|return|>", "<|return|>"),
    "plain text": (PLAIN, [], "</s>", "</s>"),  # nothing special after the answer: EOS
}


def chat_tokenizer(template: str, specials: list[str], eos: str):
    """The tiny tokenizer (models/tiny.py) with another family's special tokens, chat template and EOS."""
    from models.tiny import build_tokenizer

    tok = build_tokenizer()
    if specials:
        tok.add_special_tokens({"additional_special_tokens": specials})
    tok.eos_token = eos
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("style", list(STYLES))
def test_terminator_is_the_token_that_ends_the_assistant_turn(style):
    template, specials, eos, expected = STYLES[style]
    tok = chat_tokenizer(template, specials, eos)
    assert turn_terminator(tok) == tok.convert_tokens_to_ids(expected)
    # raw prompts (no chat template in use) end answers with EOS
    assert turn_terminator(tok, ChatOptions(use_chat_template=False)) == tok.eos_token_id


def test_terminator_differs_from_eos_where_the_family_says_so():
    gemma = chat_tokenizer(*STYLES["gemma"][:3])
    assert turn_terminator(gemma) != gemma.eos_token_id


def test_tiny_model_ends_turns_with_its_end_token(tiny_tokenizer):
    assert turn_terminator(tiny_tokenizer) == tiny_tokenizer.convert_tokens_to_ids("<|end|>")
    tiny_tokenizer_without_template = chat_tokenizer(None, [], "</s>")
    assert turn_terminator(tiny_tokenizer_without_template) == tiny_tokenizer.eos_token_id


def test_assistant_prefix_ends_the_prompt():
    tok = chat_tokenizer(*STYLES["harmony"][:3])
    chat = ChatOptions(assistant_prefix=HARMONY_PREFIX)
    assert render_chat(tok, "Pick a number.", chat).endswith("<|start|>assistant" + HARMONY_PREFIX)
    ids = prompt_token_ids(tok, "Pick a number.", chat)
    prefix_ids = tok.convert_tokens_to_ids(["<|channel|>", "f", "i", "n", "a", "l", "<|message|>"])
    assert ids[-len(prefix_ids):] == prefix_ids
    assert ids[:-len(prefix_ids)] == prompt_token_ids(tok, "Pick a number.")
    raw = prompt_token_ids(tok, "Pick a number.", ChatOptions(use_chat_template=False, assistant_prefix="A:"))
    assert tok.decode(raw, skip_special_tokens=True) == "Pick a number.A:"


@pytest.fixture(scope="module")
def harmony_model_dir(tmp_path_factory):
    """The tiny model with a harmony-style (gpt-oss) tokenizer and chat template."""
    from transformers import AutoModelForCausalLM

    from models.tiny import build_tiny_model

    base = build_tiny_model(tmp_path_factory.mktemp("tiny-base"))
    out = tmp_path_factory.mktemp("tiny-harmony")
    tok = chat_tokenizer(*STYLES["harmony"][:3])
    model = AutoModelForCausalLM.from_pretrained(base)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def test_training_and_exact_scoring_share_the_prefix_and_the_terminator(harmony_model_dir):
    from transformers import AutoTokenizer

    from evaluators.client import Scorer
    from evaluators.engines.hf_engine import HFEngine
    from evaluators.fidelity import value_distributions
    from evaluators.settings import ScorerSettings
    from trainers.config import TrainConfig
    from trainers.data import TrainingStream

    chat = {"assistant_prefix": HARMONY_PREFIX}
    tok = AutoTokenizer.from_pretrained(harmony_model_dir)
    cfg = TrainConfig(model=harmony_model_dir, method="hard", families=["binomial"], prompts_per_family=1, chat=chat)
    stream = TrainingStream(cfg, tok, 1)
    engine = HFEngine(harmony_model_dir)
    engine.settings = ScorerSettings(model=harmony_model_dir, chat=chat)   # what a Serve scorer replica reports
    scorer = Scorer(engine)
    prompt = stream.prompts[0]
    train_prompt = stream.prompt_ids("calib", 0, prompt.text)
    assert scorer.prompt_ids(prompt.text) == train_prompt
    assert tok.decode(train_prompt).endswith("<|start|>assistant" + HARMONY_PREFIX)
    # a training example ends its value with <|return|>, and exact scoring scores exactly that sequence
    value = int(np.argmax(stream.space(0).probs))
    ex = stream.calib_example(0, value)
    assert ex.input_ids[:ex.start + 1] == train_prompt
    assert ex.target_ids[-1, 0] == tok.convert_tokens_to_ids("<|return|>")
    full = ex.input_ids + [int(ex.target_ids[-1, 0])]
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(input_ids=torch.tensor([full])).logits[0].float(), -1)
    by_hand = sum(logp[ex.start + i, t].item() for i, t in enumerate(full[ex.start + 1:]))
    scored = value_distributions(scorer, [prompt], num_decimals=cfg.num_decimals, max_bins=cfg.max_bins)[0]
    assert np.log(scored.probs[value]) == pytest.approx(by_hand, abs=1e-4)
