"""The GSM8K capability evaluation on the tiny model through the HF engine, in-process (no Ray)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from cft.gsm8k import capability_items, capability_prompt
from evaluators import gsm8k
from evaluators.settings import EvalSettings
from evaluators.client import Scorer
from evaluators.engines import ScoreRequest


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    from evaluators.engines.hf_engine import HFEngine

    return Scorer(HFEngine(tiny_model_dir, max_loras=1))


def test_gold_logprob_is_the_teacher_forced_mean_per_token(scorer):
    rows = gsm8k.gsm8k_capability(scorer, 2, shots=1)
    for row, item in zip(rows, capability_items(2)):
        gold = scorer.tokenizer(item.solution, add_special_tokens=False)["input_ids"]
        prompt = scorer.prompt_ids(capability_prompt(item.question, 1))
        total = scorer.score([ScoreRequest(prompt, [gold])])[0][0]
        assert row["gold_tokens"] == len(gold) and row["gold_logprob"] == pytest.approx(total / len(gold))
        assert row["gold_logprob"] < 0 and row["answer"] == item.answer


def test_run_reports_each_measure_with_its_standard_error(scorer):
    settings = SimpleNamespace(gsm8k_items=3, gsm8k_shots=0, gsm8k_generate=True, gsm8k_max_tokens=4)
    rows, summary = gsm8k.run(scorer, settings)
    assert len(rows) == 3 and all(r["strict"] in (0.0, 1.0) for r in rows)
    assert all(r["strict"] == r["flexible"] == 0.0 for r in rows if r["truncated"])   # cut off: wrong
    for name in ("gold_logprob", "strict_acc", "flexible_acc"):
        assert np.isfinite(summary[f"gsm8k/{name}"]) and summary[f"gsm8k/{name}_se"] >= 0
    lp = [r["gold_logprob"] for r in rows]
    assert summary["gsm8k/gold_logprob_se"] == pytest.approx(np.std(lp, ddof=1) / math.sqrt(3))
    # settings the typed config does not declare yet fall back to the defaults: no generation
    _, summary = gsm8k.run(scorer, EvalSettings(gsm8k_items=2))
    assert set(summary) == {"gsm8k/gold_logprob", "gsm8k/gold_logprob_se"}


def test_paired_difference_cancels_item_difficulty():
    base = [{"index": i, "x": v} for i, v in enumerate([-1.0, -3.0, -2.0, -5.0])]
    tuned = [{"index": i, "x": v - 0.5 - 0.1 * (i % 2)} for i, v in enumerate([-1.0, -3.0, -2.0, -5.0])]
    loss, se = gsm8k.paired_difference(base, tuned, "x")
    assert loss == pytest.approx(0.55) and se == pytest.approx(np.std([0.5, 0.6, 0.5, 0.6], ddof=1) / 2)
    with pytest.raises(ValueError, match="share no item"):
        gsm8k.paired_difference(base, [{"index": 9, "x": 0.0}], "x")
