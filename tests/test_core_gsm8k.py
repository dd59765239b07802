"""GSM8K capability items vs the replay sources: no shared item, template or answer format."""

import pytest

from cft.arithmetic import LEVELS, generate_problems, grade_flexible, grade_stated, grade_strict, heldout_problems
from cft.gsm8k import (INSTRUCTION, MAX_SHOTS, capability_items, capability_prompt, fewshot_exemplars,
                       gsm8k_replay_problems, question_block, template_of)

CAPABILITY = capability_items(1319)


def test_capability_items_are_a_fixed_nested_subset_with_gsm8k_gold():
    assert capability_items(50) == CAPABILITY[:50] and capability_items(100)[:50] == CAPABILITY[:50]
    assert len({p.question for p in CAPABILITY}) == 1319
    for p in CAPABILITY:
        assert p.solution.rstrip().endswith(f"#### {p.solution.split('####')[-1].strip()}")
        assert "<<" not in p.solution                        # calculator annotations removed
        assert grade_strict(p.solution, p.answer) and grade_flexible(p.solution, p.answer)
    with pytest.raises(ValueError, match="gsm8k items"):
        capability_items(0)


@pytest.mark.parametrize("source", ["synthetic", "gsm8k"])
def test_capability_and_replay_share_no_item_template_or_answer_format(source):
    replay = generate_problems(5000, seed=0) if source == "synthetic" else gsm8k_replay_problems()
    exemplars = fewshot_exemplars(MAX_SHOTS)
    capability_questions = {p.question for p in CAPABILITY}
    assert not capability_questions & {p.question for p in replay}                 # no shared item
    assert not {e.question for e in exemplars} & {p.question for p in replay}        # exemplars not replayed
    assert not {template_of(p.question) for p in CAPABILITY} & {template_of(p.question) for p in replay}
    for p in replay:                                                                 # another answer format
        assert "####" not in p.solution and "####" not in p.question and INSTRUCTION not in p.question
        assert not p.question.startswith("Question:")
        assert grade_stated(p.solution, p.answer) and not grade_strict(p.solution, p.answer)
    if source == "synthetic":   # templates: a few skeletons, none of them a capability item's
        assert len({template_of(p.question) for p in replay}) < 100


def test_gsm8k_replay_is_deterministic_and_complete():
    assert gsm8k_replay_problems(20, seed=1) == gsm8k_replay_problems(20, seed=1)
    assert gsm8k_replay_problems(20, seed=1) != gsm8k_replay_problems(20, seed=2)
    everything = gsm8k_replay_problems()
    # all train problems but the exemplars and the one train/test pair made from one template
    assert len(everything) == 7473 - MAX_SHOTS - 1 and {p.level for p in everything} == {"gsm8k"}
    p = everything[0]
    assert p.solution.endswith(f"The answer is {p.solution.rsplit('The answer is ', 1)[1]}")


def test_synthetic_replay_answers_are_exact_in_its_own_format():
    for p in generate_problems(300, seed=3) + heldout_problems(100, seed=3):
        assert p.level in LEVELS and p.solution.endswith(f"The answer is {p.answer}.")
        assert grade_stated(p.solution, p.answer) and grade_flexible(p.solution, p.answer)


def test_capability_prompt_holds_the_shots_then_the_question():
    q = CAPABILITY[0].question
    zero, three = capability_prompt(q, 0), capability_prompt(q, 3)
    assert zero == INSTRUCTION + "\n\n" + question_block(q)
    assert three.endswith(question_block(q)) and three.count("Question: ") == 4 and three.count("\n#### ") == 3
    with pytest.raises(ValueError, match="shots"):
        capability_prompt(q, MAX_SHOTS + 1)
