"""Fast checks of the scoring layer without Ray or vLLM: the HF engine in-process on the tiny model,
the evaluation helpers, settings and CLI argument errors."""

import os
import time

import numpy as np
import pytest
import torch

from cft.output_space import build_output_space
from cft.splits import make_prompt
from evaluators.client import Scorer
from evaluators.engines import AdapterNotFound, GenerateRequest, ScoreRequest, resolve_adapter
from evaluators.engines.vllm_engine import _trie_nodes
from evaluators.fidelity import exact_fidelity
from evaluators.mcq_lenient import parse_letter, tv_from_uniform
from evaluators.openrandom import support_size
from evaluators.sampled import empirical_tv, sampled_fidelity
from evaluators.settings import EvalSettings, ScorerSettings
from models.toy import random_adapter as make_adapter


@pytest.fixture(scope="module")
def hf_engine(tiny_model_dir):
    from evaluators.engines.hf_engine import HFEngine

    return HFEngine(tiny_model_dir, max_loras=1)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_model_dir, root / f"a{i}", seed=i) for i in range(2)]


def full_forward_logprob(model_dir, prompt, cont, adapter=None):
    """log P(cont | prompt) from one plain forward pass over prompt + cont (no cache reuse)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + cont])).logits[0], -1)
    return sum(logp[len(prompt) + j - 1, t].item() for j, t in enumerate(cont))


def test_hf_cached_scoring_matches_a_plain_forward_pass(hf_engine, tiny_model_dir, adapters):
    prompt = [1, 4, 40, 41, 42, 7, 5]
    conts = [[120, 2], [15, 16, 2], [2], [130, 131, 132, 2]]   # unequal lengths exercise the padding
    for adapter in (None, adapters[0]):
        got = hf_engine.score([ScoreRequest(prompt, conts, adapter)])[0]
        want = [full_forward_logprob(tiny_model_dir, prompt, c, adapter) for c in conts]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_hf_adapters_move_scores_and_survive_lru_eviction(hf_engine, adapters):
    request = lambda a: ScoreRequest([1, 4, 40, 7, 5], [[20, 2], [21, 22, 2]], a)
    base = hf_engine.score([request(None)])[0]
    first = hf_engine.score([request(adapters[0])])[0]
    second = hf_engine.score([request(adapters[1])])[0]      # evicts the first (max_loras=1)
    assert list(hf_engine.loaded.values()) == [os.path.realpath(adapters[1])]
    again = hf_engine.score([request(adapters[0]), request(None)])
    assert min(abs(a - b) for a, b in zip(base, first)) > 1e-3
    assert min(abs(a - b) for a, b in zip(first, second)) > 1e-3
    np.testing.assert_allclose(again[0], first, atol=1e-6)
    np.testing.assert_allclose(again[1], base, atol=1e-6)   # the base model, adapters disabled


def test_garbage_model_scores_as_invalid_without_crashing(hf_engine):
    prompts = [make_prompt("poisson", {"lambda": 4.0}), make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0})]
    scorer = Scorer(hf_engine)
    rows = exact_fidelity(scorer, prompts, num_decimals=1, max_bins=32)
    assert all(r["off_support_mass"] > 0.99 and r["tv"] > 0.99 for r in rows)
    sampled = sampled_fidelity(scorer, prompts, n=4, max_tokens=4, num_decimals=1, max_bins=32)
    assert all(r["valid_rate"] == 0.0 and np.isnan(r["w1"]) and r["tv"] > 0.99 for r in sampled)


def test_hf_greedy_generation_is_repeated_and_truncation_is_none(hf_engine):
    out = hf_engine.generate([GenerateRequest([1, 4, 40, 7, 5], n=3, temperature=0.0, max_tokens=3)])[0]
    assert len(out) == 3 and len(set(out)) == 1
    assert out[0] is None   # a random model does not say EOS within 3 tokens


def test_trie_nodes_list_each_prefix_once_with_its_next_tokens():
    nodes = _trie_nodes([[5, 2], [5, 6, 2], [7, 2]])
    assert nodes == {(): [5, 7], (5,): [2, 6], (5, 6): [2], (7,): [2]}


def test_empirical_tv_counts_off_support_samples_fully():
    space = build_output_space(make_prompt("bernoulli", {"p": 0.5}))
    assert space.values == ("0", "1")
    assert empirical_tv(space, ["0", "1"] * 50) == pytest.approx(0.0)
    assert empirical_tv(space, ["0"] * 50 + ["x"] * 50) == pytest.approx(0.5)
    assert empirical_tv(space, ["1.0"] * 10) == pytest.approx(1.0)   # not the canonical string


def test_support_size_and_mcq_helpers():
    assert support_size([0.5, 0.3, 0.15, 0.05], 0.9) == (3, False)
    assert support_size([0.4, 0.3], 0.9) == (2, True)
    assert parse_letter("Q?\nA) x\nB) y\nAnswer: C") == "C"
    assert parse_letter("no answer") is None
    assert tv_from_uniform(list("ABCD") * 5) == pytest.approx(0.0)
    assert tv_from_uniform(list("AAAA")) == pytest.approx(0.75)


def test_settings_reject_unknown_evals_splits_and_engines():
    with pytest.raises(ValueError, match="unknown eval"):
        EvalSettings(evals=("fidelity", "vibes"))
    with pytest.raises(ValueError, match="unknown or training split"):
        EvalSettings(splits=("test_everything",))
    with pytest.raises(ValueError, match="unknown engine"):
        ScorerSettings(model="m", engine="onnx")


def test_adapter_identity_changes_when_its_weights_are_rewritten(tmp_path, tiny_model_dir, adapters):
    with pytest.raises(AdapterNotFound, match="no LoRA adapter"):
        resolve_adapter(str(tmp_path / "nowhere"))
    path = make_adapter(tiny_model_dir, tmp_path / "rewritten", seed=5)
    before = resolve_adapter(path).key
    time.sleep(0.01)
    make_adapter(tiny_model_dir, tmp_path / "rewritten", seed=6)
    assert resolve_adapter(path).key != before


@pytest.mark.parametrize("args, message", [
    (["--evals", "fidelity,vibes"], "unknown eval"),
    (["--split", "test_everything"], "splits: unknown or training split"),
    (["--families", "zipf"], "families: unknown family(ies) ['zipf']"),
    (["--replicas", "0"], "replicas: Input should be greater than or equal to 1"),
    (["--adapter", "/nonexistent/adapter"], "no LoRA adapter"),
])
def test_cli_reports_bad_arguments_before_starting_anything(args, message, tiny_model_dir, capsys):
    from evaluators.score import main

    assert main(["--model", tiny_model_dir, *args]) == 2
    assert message in capsys.readouterr().err


def test_huge_integer_samples_score_without_exhausting_memory():
    """sampled.py scores with cft.metrics.sample_metrics, whose chi-square pools wild samples into
    its edge bins instead of allocating an array up to them."""
    from cft.metrics import sample_metrics

    prompt = make_prompt("poisson", {"lambda": 4.0})
    row = sample_metrics(prompt, ["3", "5", "17121561715", "x"] * 20)
    assert row["valid_rate"] == 0.75 and row["support_violation_rate"] == 0.0
    assert row["w1"] > 1e9 and row["gof_pvalue"] < 1e-6
