"""Synthetic replay: arithmetic problems generated offline with exact answers, and the graders.

Levels follow lm-eval's arithmetic tasks (2-4 digit addition/subtraction, 2-digit multiplication)
and short multi-step word problems, plus single-digit addition so that the smallest models still have
an accuracy that tuning can lose. Every problem carries a worked solution ending `The answer is n.`,
the completion replay training teaches. The capability yardstick is GSM8K (cft/gsm8k.py), which shares
no source, template or answer format (`#### n`) with these problems, so replay cannot train on it.

Training draws from `generate_problems`; `heldout_problems` is a disjoint set (a problem belongs to one
side by a hash of its question) for the replay-fit diagnostic (evaluators/arithmetic.py): in-distribution
for synthetic replay, so it is not a capability measure.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

LEVELS = ("add1", "add2", "sub2", "add3", "sub3", "add4", "mul2", "word")


@dataclass(frozen=True)
class ArithmeticProblem:
    question: str
    answer: str
    solution: str
    level: str


def _add(digits: int) -> Callable[[random.Random], ArithmeticProblem]:
    def make(rng: random.Random) -> ArithmeticProblem:
        low = 10 ** (digits - 1) if digits > 1 else 0
        a, b = (rng.randrange(low, 10 ** digits) for _ in range(2))
        return _binary(f"add{digits}", a, "+", b, a + b)
    return make


def _sub(digits: int) -> Callable[[random.Random], ArithmeticProblem]:
    def make(rng: random.Random) -> ArithmeticProblem:
        a, b = (rng.randrange(10 ** (digits - 1), 10 ** digits) for _ in range(2))
        return _binary(f"sub{digits}", a, "-", b, a - b)
    return make


def _mul2(rng: random.Random) -> ArithmeticProblem:
    a, b = rng.randrange(10, 100), rng.randrange(10, 100)
    return _binary("mul2", a, "*", b, a * b)


ANSWER_INSTRUCTION = "End with \"The answer is\" and the number."


def _binary(level: str, a: int, op: str, b: int, result: int) -> ArithmeticProblem:
    question = f"Calculate {a} {op} {b}. {ANSWER_INSTRUCTION}"
    return ArithmeticProblem(question, str(result), f"{a} {op} {b} = {result}. The answer is {result}.", level)


_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells")


def _word(rng: random.Random) -> ArithmeticProblem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    start, bought, packs, given = rng.randrange(5, 60), rng.randrange(2, 9), rng.randrange(2, 7), rng.randrange(1, 20)
    gained = bought * packs
    total = start + gained
    final = total - given
    question = (f"{name} has {start} {item}. {name} buys {packs} packs with {bought} {item} in each pack, "
                f"then gives away {given} {item}. How many {item} does {name} have now? {ANSWER_INSTRUCTION}")
    solution = (f"{name} buys {packs} * {bought} = {gained} {item}.\n"
                f"Then {name} has {start} + {gained} = {total} {item}.\n"
                f"After giving away {given}, {name} has {total} - {given} = {final} {item}.\nThe answer is {final}.")
    return ArithmeticProblem(question, str(final), solution, "word")


_MAKERS = {"add1": _add(1), "add2": _add(2), "sub2": _sub(2), "add3": _add(3), "sub3": _sub(3), "add4": _add(4),
           "mul2": _mul2, "word": _word}


def _is_heldout(question: str) -> bool:
    return hashlib.sha256(question.encode()).digest()[0] < 52  # ~20% of all problems are held out


def _draw(n: int, seed: int, levels: Sequence[str], heldout: bool) -> list[ArithmeticProblem]:
    unknown = [lv for lv in levels if lv not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown arithmetic level(s) {unknown}; known: {', '.join(LEVELS)}")
    rng = random.Random(f"arith-{seed}-{heldout}")
    out: list[ArithmeticProblem] = []
    seen: set[str] = set()
    for attempt in range(1000 * max(n, 1)):
        if len(out) == n:
            break
        # levels in turn by attempt, so a small level (add1 has 100 problems) that runs out of new
        # problems is skipped rather than retried forever
        p = _MAKERS[levels[attempt % len(levels)]](rng)
        if _is_heldout(p.question) == heldout and p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out


def generate_problems(n: int, seed: int = 0, levels: Sequence[str] = LEVELS) -> list[ArithmeticProblem]:
    """Training/replay problems, levels interleaved round-robin; deterministic by seed."""
    return _draw(n, seed, levels, heldout=False)


def heldout_problems(n: int, seed: int = 0, levels: Sequence[str] = LEVELS) -> list[ArithmeticProblem]:
    """Replay-fit problems, never among any `generate_problems` output (same templates and format)."""
    return _draw(n, seed, levels, heldout=True)


# --- grading -------------------------------------------------------------------------------------

_STRICT = re.compile(r"#### (-?[0-9.,]+)")
_STATED = re.compile(r"The answer is \$?(-?[0-9.,]+)")
_NUMBER = re.compile(r"-?[$0-9.,]{2,}|-?[0-9]+")


def canonical_number(number: str) -> str:
    """A number as graders compare it: no commas or dollar signs, `18.00` and `18` alike."""
    text = number.replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else repr(value)


def grade_strict(output: str, answer: str) -> bool:
    """GSM8K strict match: the number after the first `#### ` equals the answer."""
    m = _STRICT.search(output)
    return bool(m) and canonical_number(m.group(1)) == canonical_number(answer)


def grade_stated(output: str, answer: str) -> bool:
    """Synthetic replay's strict match: the number after the first `The answer is ` equals the answer."""
    m = _STATED.search(output)
    return bool(m) and canonical_number(m.group(1)) == canonical_number(answer)


def hash_answer(solution: str) -> str:
    """The canonical number after a GSM8K solution's `#### `; ValueError when there is none."""
    m = _STRICT.search(solution)
    if not m:
        raise ValueError("answer has no final '#### <number>'")
    return canonical_number(m.group(1))


def grade_flexible(output: str, answer: str) -> bool:
    """Flexible match: the last number anywhere in the output equals the answer."""
    numbers = _NUMBER.findall(output)
    return bool(numbers) and canonical_number(numbers[-1]) == canonical_number(answer)


def graded(output: str | None, answer: str, strict: Callable[[str, str], bool]) -> dict:
    """A greedy answer's grades, 1.0 or 0.0: `strict` (grade_strict or grade_stated, the format's own match) and
    flexible. An answer cut off by max_tokens before EOS (None) is marked truncated and graded as wrong."""
    text = output or ""
    return {"output": text, "truncated": output is None, "strict": float(strict(text, answer)),
            "flexible": float(grade_flexible(text, answer))}


def load_gsm8k_jsonl(path: str | Path) -> list[ArithmeticProblem]:
    """Load a local GSM8K-format file: one JSON object a line with `question` and `answer`
    (the answer being a worked solution ending in `#### n`)."""
    problems = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "question" not in row or "answer" not in row:
            raise ValueError(f"{path}:{lineno}: expected keys 'question' and 'answer'")
        try:
            answer = hash_answer(row["answer"])
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: {err}") from None
        problems.append(ArithmeticProblem(row["question"], answer, row["answer"], "gsm8k"))
    return problems
