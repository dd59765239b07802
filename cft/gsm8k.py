"""GSM8K (openai/grade-school-math, MIT; cft/data/SOURCE.md): the capability yardstick, and a replay
source that cannot leak into it.

- Capability items: a fixed subset of the TEST split, the first N in an order fixed by a hash of each
  question (so 50 items are a subset of 100, of 200). Gold solutions keep GSM8K's format, a worked
  solution ending `#### n`, with the calculator annotations (`<<4*2=8>>`) removed.
- Few-shot exemplars: the first MAX_SHOTS short problems of the TRAIN split, never replayed.
- Replay (`gsm8k_replay_problems`): the other train problems, their final line rewritten from
  `#### n` to `The answer is n.`, so replay teaches neither the evaluation's items nor its answer format.
  Train problems that are a test problem with other numbers and names (GSM8K has such a pair: the
  "snowflake stamps" problem) are left out too: `template_of` finds them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from dataclasses import replace
from functools import lru_cache
from importlib import resources

from cft.arithmetic import ArithmeticProblem, hash_answer

MAX_SHOTS = 8
_EXEMPLAR_MAX_CHARS = 400          # question + solution: keeps an 8-shot prompt near 1,000 tokens
_CALCULATOR = re.compile(r"<<[^>]*>>")
INSTRUCTION = ("Solve the math word problem. Reason step by step, then write the final answer on its own "
               "line as \"#### <number>\".")


@lru_cache(maxsize=2)
def _load(split: str) -> tuple[tuple[str, str], ...]:
    """(question, raw answer) of every problem of one split, in file order."""
    data = resources.files("cft.data").joinpath(f"gsm8k_{split}.jsonl.gz").read_bytes()
    rows = [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip()]
    return tuple((r["question"], r["answer"]) for r in rows)


def clean_solution(answer: str) -> str:
    """A GSM8K answer without its calculator annotations: `$<<9*2=18>>18` reads `$18`."""
    return _CALCULATOR.sub("", answer)


def _problem(question: str, answer: str, level: str) -> ArithmeticProblem:
    solution = clean_solution(answer)
    return ArithmeticProblem(question, hash_answer(solution), solution, level)


def _order_key(question: str) -> bytes:
    return hashlib.sha256(question.encode("utf-8")).digest()


def template_of(question: str) -> str:
    """A question with its numbers and capitalised words (names, pronouns opening a sentence) blanked:
    what two problems made from one template share."""
    return re.sub(r"\b[A-Z][a-z]+\b", "N", re.sub(r"\d[\d,.]*", "#", question))


def capability_items(n: int) -> list[ArithmeticProblem]:
    """The first n test problems in the fixed hash order (gold solutions end `#### n`)."""
    test = sorted(_load("test"), key=lambda qa: _order_key(qa[0]))
    if not 1 <= n <= len(test):
        raise ValueError(f"gsm8k items must be in [1, {len(test)}] (got {n})")
    return [_problem(q, a, "gsm8k-test") for q, a in test[:n]]


@lru_cache(maxsize=1)
def _exemplar_indices() -> tuple[int, ...]:
    train = _load("train")
    short = [i for i, (q, a) in enumerate(train) if len(q) + len(clean_solution(a)) <= _EXEMPLAR_MAX_CHARS]
    return tuple(short[:MAX_SHOTS])


def fewshot_exemplars(shots: int) -> list[ArithmeticProblem]:
    if not 0 <= shots <= MAX_SHOTS:
        raise ValueError(f"gsm8k shots must be in [0, {MAX_SHOTS}] (got {shots})")
    train = _load("train")
    return [_problem(*train[i], "gsm8k-exemplar") for i in _exemplar_indices()[:shots]]


def question_block(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def capability_prompt(question: str, shots: int = 0) -> str:
    """The user turn of a capability item: the instruction, `shots` worked train exemplars, the question."""
    blocks = [INSTRUCTION] + [f"{question_block(e.question)} {e.solution}" for e in fewshot_exemplars(shots)]
    return "\n\n".join(blocks + [question_block(question)])


def replay_solution(solution: str) -> str:
    """A (cleaned) GSM8K solution with its final `#### n` line rewritten as `The answer is n.`."""
    body, _, final = solution.rpartition("####")
    return f"{body.rstrip()}\nThe answer is {final.strip()}."


def gsm8k_replay_problems(n: int | None = None, seed: int = 0) -> list[ArithmeticProblem]:
    """Replay problems from the GSM8K TRAIN split, the same objects cft.arithmetic.generate_problems
    returns: the few-shot exemplars and near-duplicates of test problems left out, shuffled by seed,
    the first n (all 7,464 when None); solutions end `The answer is n.`, not the evaluation's `#### n`."""
    train = _load("train")
    reserved = set(_exemplar_indices())
    test_templates = {template_of(q) for q, _ in _load("test")}
    indices = [i for i, (q, _) in enumerate(train) if i not in reserved and template_of(q) not in test_templates]
    random.Random(f"gsm8k-replay-{seed}").shuffle(indices)
    problems = [_problem(*train[i], "gsm8k") for i in indices[:n]]
    return [replace(p, solution=replay_solution(p.solution)) for p in problems]
