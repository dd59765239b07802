"""Issue 28: the reference code's training switches as settings: gradient clipping (off with
null), a global batch checked against its parts, and the token each value ends with (the chat turn's
end or the tokenizer's EOS) in training targets and exact scoring alike, on the tiny model."""

import numpy as np
import pytest

from cft.prompts import ChatOptions, turn_terminator
from orchestrator.spec import SpecError, parse_spec
from trainers.config import TrainConfig
from trainers.deepspeed_config import build_deepspeed_config


# ---------------------------------------------------------------- training switches

def test_gradient_clipping_is_a_setting_and_null_turns_it_off():
    assert build_deepspeed_config(TrainConfig(), 1)["gradient_clipping"] == 1.0
    assert build_deepspeed_config(TrainConfig(grad_clip=0.5), 1)["gradient_clipping"] == 0.5
    assert build_deepspeed_config(TrainConfig(grad_clip=None), 1)["gradient_clipping"] == 0.0   # DeepSpeed: off
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0)


def test_global_batch_must_be_the_product_of_its_parts():
    assert TrainConfig(global_batch_size=8, batch_size=2, workers_per_trial=2, grad_accum=2).global_batch_size == 8
    with pytest.raises(ValueError, match=r"global_batch_size: 8 asked, but batch_size \(8\) x workers_per_trial "
                                         r"\(4\) x grad_accum \(1\) = 32"):
        TrainConfig(global_batch_size=8, workers_per_trial=4)


def test_a_spec_asking_for_a_global_batch_names_the_model_that_breaks_it():
    spec = {"name": "t", "models": [{"ref": "tiny"}, {"ref": "tiny", "name": "wide", "training": {"workers_per_trial": 2}}],
            "training": {"global_batch_size": 8, "batch_size": 8}}
    with pytest.raises(SpecError, match=r"models\.1\.training.*global_batch_size: 8 asked"):
        parse_spec(spec)
    spec["models"][1]["training"]["batch_size"] = 4
    assert parse_spec(spec).training_for("wide", "soft").global_batch_size == 8


def test_terminator_option_picks_eos_over_the_turn_end(tiny_tokenizer):
    turn_end = tiny_tokenizer.convert_tokens_to_ids("<|end|>")
    assert turn_end != tiny_tokenizer.eos_token_id
    assert turn_terminator(tiny_tokenizer, ChatOptions()) == turn_end
    assert turn_terminator(tiny_tokenizer, ChatOptions(terminator="eos")) == tiny_tokenizer.eos_token_id
    assert turn_terminator(tiny_tokenizer, ChatOptions(terminator="turn_end")) == turn_end


@pytest.mark.parametrize("terminator", ["turn_end", "eos"])
def test_training_targets_and_exact_scoring_end_values_with_the_chosen_terminator(tiny_model_dir, tiny_tokenizer,
                                                                                   terminator):
    import torch

    from evaluators.client import Scorer
    from evaluators.engines.hf_engine import HFEngine
    from evaluators.fidelity import value_distributions
    from evaluators.settings import ScorerSettings
    from trainers.data import TrainingStream

    chat = {"terminator": terminator}
    expected = (tiny_tokenizer.eos_token_id if terminator == "eos"
                else tiny_tokenizer.convert_tokens_to_ids("<|end|>"))
    cfg = TrainConfig(model=tiny_model_dir, method="hard", families=["binomial"], prompts_per_family=1, chat=chat,
                      precision="fp32")
    stream = TrainingStream(cfg, tiny_tokenizer, 1)
    assert stream.end_id == expected
    value = int(np.argmax(stream.space(0).probs))
    ex = stream.calib_example(0, value)
    assert ex.target_ids[-1, 0] == expected
    engine = HFEngine(tiny_model_dir, dtype="float32")
    engine.settings = ScorerSettings(model=tiny_model_dir, chat=chat)   # what a Serve scorer replica reports
    full = ex.input_ids + [int(ex.target_ids[-1, 0])]
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(input_ids=torch.tensor([full])).logits[0].float(), -1)
    by_hand = sum(logp[ex.start + i, t].item() for i, t in enumerate(full[ex.start + 1:]))
    scored = value_distributions(Scorer(engine), [stream.prompts[0]], num_decimals=cfg.num_decimals,
                                 max_bins=cfg.max_bins)[0]
    assert np.log(scored.probs[value]) == pytest.approx(by_hand, abs=1e-4)
