import json
import re

import pytest

from cft.arithmetic import (LEVELS, generate_problems, grade_flexible, grade_stated, grade_strict,
                            heldout_problems, load_gsm8k_jsonl)


def _evaluate(question: str) -> int:
    m = re.search(r"Calculate (\d+) ([-+*]) (\d+)\.", question)
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def test_answers_are_exact_and_solutions_end_with_them():
    problems = generate_problems(300, seed=3)
    assert {p.level for p in problems} == set(LEVELS)
    for p in problems:
        assert p.solution.endswith(f"The answer is {p.answer}.")   # not GSM8K's `#### n` (tests/test_core_gsm8k.py)
        assert grade_stated(p.solution, p.answer) and grade_flexible(p.solution, p.answer)
        if p.level != "word":
            assert int(p.answer) == _evaluate(p.question)
        else:  # recompute the word problem from its numbers
            start, packs, each, given = map(int, re.findall(r"\d+", p.question))
            assert int(p.answer) == start + packs * each - given


def test_deterministic_by_seed_and_heldout_is_disjoint():
    assert generate_problems(50, seed=1) == generate_problems(50, seed=1)
    assert generate_problems(50, seed=1) != generate_problems(50, seed=2)
    train = {p.question for s in range(3) for p in generate_problems(1000, seed=s)}
    held = {p.question for s in range(3) for p in heldout_problems(300, seed=s)}
    assert len(held) > 800 and not train & held


@pytest.mark.parametrize("output,answer,strict,flexible", [
    ("#### 42", "42", True, True), ("so #### 1,234", "1234", True, True),
    ("The answer is 42.", "42", False, True), ("#### 41\nactually 42", "42", False, True),
    ("42 or maybe 43", "42", False, False), ("", "42", False, False), ("#### -7", "-7", True, True),
    ("$42.00", "42", False, True),
])
def test_graders(output, answer, strict, flexible):
    assert grade_strict(output, answer) is strict
    assert grade_flexible(output, answer) is flexible
    if "####" in output:   # replay's own format grades the same way
        assert grade_stated(output.replace("#### ", "The answer is "), answer) is strict
        assert not grade_stated(output, answer)


def test_gsm8k_loader(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
            {"question": "Half of 1,000?", "answer": "1000 / 2 = 500\n#### 500"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    problems = load_gsm8k_jsonl(path)
    assert [p.answer for p in problems] == ["7", "500"] and problems[0].level == "gsm8k"
    path.write_text(json.dumps({"question": "q", "answer": "no final line"}))
    with pytest.raises(ValueError, match=r"gsm8k.jsonl:1: answer has no final"):
        load_gsm8k_jsonl(path)
