"""The calibration objective through a real engine (HF, in-process, no Ray): on integer families the
sampled value of a toy model lies within 3 standard errors of the value computed exactly from the same
model's distribution over the support strings."""

import pytest

from cft.metrics import exact_calibration_error, expected_calibration_error
from cft.splits import make_prompt
from evaluators.client import Scorer
from evaluators.fidelity import value_distributions
from evaluators.sampled import sampled_fidelity
from models.toy import ToyTraining, train_toy_model

DECIMALS, BINS = 0, 32
PROMPTS = [make_prompt("bernoulli", {"p": 0.3}), make_prompt("binomial", {"n": 4.0, "p": 0.5}),
           make_prompt("poisson", {"lambda": 2.0})]


@pytest.fixture(scope="module")
def toy_scorer(tiny_model_dir, tmp_path_factory):
    from evaluators.engines.hf_engine import HFEngine

    # trained on the first two prompts only, so the Poisson prompt is answered off-target
    path = train_toy_model(tiny_model_dir, tmp_path_factory.mktemp("toy"), PROMPTS[:2],
                           ToyTraining(steps=30, batch_size=8, num_decimals=DECIMALS, max_bins=BINS))
    return Scorer(HFEngine(path, max_loras=1))


def test_sampled_calibration_error_agrees_with_the_exact_one(toy_scorer):
    n = 400
    exact = value_distributions(toy_scorer, PROMPTS, None, DECIMALS, BINS)
    sampled = sampled_fidelity(toy_scorer, PROMPTS, n, None, seed=1, max_tokens=6,
                               num_decimals=DECIMALS, max_bins=BINS)
    for dist, row in zip(exact, sampled):
        expected = expected_calibration_error(dist.prompt, dist.space, dist.probs, n)
        limit = exact_calibration_error(dist.prompt, dist.space, dist.probs)
        assert abs(row["calibration_error"] - expected) <= 3 * row["calibration_error_se"], dist.prompt.key
        assert limit <= expected + 0.005
    assert sum(d.probs.sum() for d in exact) / len(exact) > 0.5   # there is mass on the support to compare
