"""The paper's broader evaluations, reference-exact (evaluators.openrandom, evaluators.mcq) beside the
lenient variants: how answers are read, and runs on the tiny model through the HF engine."""

import math

import numpy as np
import pytest
import torch

from evaluators.client import Scorer
from evaluators.mcq import MAX_TOKENS, balance, load_prompt, mcq_generations, summarize
from evaluators.openrandom import first_token_supports, open_random
from evaluators.registry import EVALUATIONS, evaluation_runner
from evaluators.settings import EvalSettings, ScorerSettings
from evaluators.textparse import normalize_answer, parse_mcq

GOOD_MCQ = """Question: Which drug reverses opioid overdose?
A. Naloxone
B. Atropine
C.   Flumazenil
D. Glucagon
Correct Answer: A
Explanation: Naloxone is an opioid antagonist."""


@pytest.mark.parametrize("text,answer", [
    ("Paris", "Paris"), ("  Tokyo  \nand more lines", "Tokyo"), ('"New   York"', "New York"), ("'Lima'", "Lima"),
    ("<think>hmm\nmaybe</think>\n\nOslo", "Oslo"), ("<think>never closed", ""), ("'unbalanced\"", "'unbalanced\""),
    ("\n\n  \n", ""), (None, ""), ("Blue Whale", "Blue Whale"),   # case kept
])
def test_open_answers_are_normalised_as_the_reference_does(text, answer):
    assert normalize_answer(text) == answer


def test_the_strict_mcq_parser_accepts_only_the_exact_format():
    good = parse_mcq(GOOD_MCQ)
    assert good.parseable and good.answer == "A" and good.options["C"] == "Flumazenil" and good.distinct_options
    assert parse_mcq("<think>draft</think>\n" + GOOD_MCQ).parseable
    broken = {
        "extra line": GOOD_MCQ + "\nHope this helps!",
        "answer with text": GOOD_MCQ.replace("Correct Answer: A", "Correct Answer: A. Naloxone"),
        "lower-case answer": GOOD_MCQ.replace("Correct Answer: A", "Correct Answer: a"),
        "missing explanation": GOOD_MCQ.rsplit("\n", 1)[0],
        "repeated option": GOOD_MCQ.replace("D. Glucagon", "B. Glucagon"),
        "empty option": GOOD_MCQ.replace("B. Atropine", "B."),
        "parenthesised letters": GOOD_MCQ.replace("A. ", "A) "),
        "truncated (no end token)": None,
    }
    for why, text in broken.items():
        assert not parse_mcq(text).parseable, why
    assert not parse_mcq(GOOD_MCQ.replace("D. Glucagon", "D. Naloxone")).distinct_options


def test_balance_is_tv_chi_square_and_largest_deviation_from_uniform():
    even = balance(list("ABCD") * 25)
    assert even["tv_from_uniform"] == 0.0 and even["chi_square_pvalue"] == pytest.approx(1.0)
    skew = balance(list("A" * 70 + "B" * 10 + "C" * 10 + "D" * 10))
    assert skew["tv_from_uniform"] == pytest.approx(0.45) and skew["max_abs_deviation"] == pytest.approx(0.45)
    assert skew["chi_square_stat"] == pytest.approx(sum((o - 25) ** 2 / 25 for o in (70, 10, 10, 10)))
    assert math.isnan(balance([])["tv_from_uniform"])   # nothing parsed: not "perfectly balanced"
    rows = [{"answer": "B", "distinct_options": True, "truncated": False},
            {"answer": "", "distinct_options": False, "truncated": True}]
    assert summarize(rows)["parse_rate"] == 0.5 and summarize(rows)["truncated_rate"] == 0.5


def test_both_variants_are_registered_by_name():
    assert {"openrandom", "mcq", "openrandom_lenient", "mcq_lenient"} <= set(EVALUATIONS)
    assert load_prompt().startswith("You are a medical education expert") and "Correct Answer: [A/B/C/D]" in load_prompt()


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    from evaluators.engines.hf_engine import HFEngine

    return Scorer(HFEngine(tiny_model_dir, max_loras=1))


def test_first_token_support_counts_over_the_whole_vocabulary(scorer, tiny_model_dir):
    """Where the top k tokens do not reach top_p (a random model spreads its mass), the support is
    counted over every token of the vocabulary: the count a full softmax gives."""
    from transformers import AutoModelForCausalLM

    ids = [scorer.prompt_ids("Name a random city.")]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor(ids)).logits[0, -1], -1)
    probs = np.sort(probs[:len(scorer.tokenizer)].numpy())[::-1]
    expected = int(np.argmax(np.cumsum(probs) >= 0.9 - 1e-6)) + 1
    (size, over), = first_token_supports(scorer, ids, 0.9, top_k=4)
    assert over == "vocabulary" and abs(size - expected) <= 1 and size > 4
    two_tokens = float(probs[0] + probs[1]) * 0.999   # reached by the top two: no vocabulary pass
    (size_top, over_top), = first_token_supports(scorer, ids, two_tokens, top_k=4)
    assert over_top == "top_k" and size_top == 2


def test_open_random_runs_on_the_tiny_model(scorer):
    rows = open_random(scorer, n=6, prompts=["Name a random city.", "Pick a random color."], top_k=8)
    assert len(rows) == 2 and all(r["n"] == 6 for r in rows)
    for r in rows:
        assert 0.0 <= r["unique_fraction"] <= r["valid_rate"] + r["truncated_rate"] <= 1.0 + 1e-9
        assert r["first_token_support"] >= 1


def test_mcq_needs_room_for_256_new_tokens_and_runs_when_it_has_it(scorer):
    settings = EvalSettings(evals=["mcq"], mcq_questions=3)
    with pytest.raises(ValueError, match=f"at least {len(scorer.prompt_ids(load_prompt())) + MAX_TOKENS}"):
        evaluation_runner("mcq")(scorer, settings)   # the default max_model_len, 512, and a char tokenizer
    roomy = Scorer(scorer.target)
    roomy.settings = ScorerSettings(model=scorer.settings.model, max_model_len=4096)
    rows = mcq_generations(roomy, 1)
    assert len(rows) == 1 and all(r["answer"] == "" for r in rows)   # a random model writes no MCQ
    assert all(r["errors"] for r in rows)
