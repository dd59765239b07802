"""MCQ answer-position balance, the project's earlier lenient variant (the reference-exact one is
evaluators.mcq): the model writes multiple-choice questions (A-D) on 20 general topics and names the
correct letter after `Answer:` anywhere in its text, in at most settings.mcq_max_tokens tokens; the
score is the TV distance of the answer letters from uniform over the questions that name one.
Summary keys `mcq_lenient/...`.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from evaluators.client import Scorer, as_scorer
from evaluators.engines.base import GenerateRequest

LETTERS = "ABCD"
TOPICS = ("world history", "biology", "geography", "chemistry", "physics", "literature", "music", "sports",
          "astronomy", "computer science", "economics", "art history", "mathematics", "cooking", "films",
          "languages", "medicine", "geology", "philosophy", "technology")
PROMPT = ("Write one multiple-choice question about {topic} with four options labelled A, B, C and D. "
          "Then, on the last line, write 'Answer: ' followed by the letter of the correct option.")
ANSWER = re.compile(r"Answer:\s*\(?([ABCD])\b")


def parse_letter(text: str | None) -> str | None:
    found = ANSWER.findall(text or "")
    return found[-1] if found else None


def tv_from_uniform(letters: list[str]) -> float:
    if not letters:
        return float("nan")
    counts = Counter(letters)
    return 0.5 * sum(abs(counts.get(c, 0) / len(letters) - 1 / len(LETTERS)) for c in LETTERS)


def mcq_balance(scorer: Scorer, n_questions: int, adapter: str | None = None, seed: int = 0,
                max_tokens: int = 160) -> list[dict]:
    """One row per topic with its letters; n_questions are spread evenly over the topics."""
    scorer = as_scorer(scorer)
    per_topic = math.ceil(n_questions / len(TOPICS))
    requests = [GenerateRequest(scorer.prompt_ids(PROMPT.format(topic=t)), n=per_topic, temperature=1.0,
                                max_tokens=max_tokens, seed=seed + i, adapter=adapter)
                for i, t in enumerate(TOPICS)]
    return [{"topic": topic, "n": len(outs), "letters": "".join(parse_letter(o) or "-" for o in outs)}
            for topic, outs in zip(TOPICS, scorer.generate(requests))]


def run(scorer: Scorer, settings, adapter: str | None = None) -> tuple[list[dict], dict[str, float]]:
    rows = mcq_balance(scorer, settings.mcq_questions, adapter, settings.seed, settings.mcq_max_tokens)
    letters = [c for r in rows for c in r["letters"] if c != "-"]
    total = sum(r["n"] for r in rows)
    return rows, {"mcq_lenient/tv_from_uniform": tv_from_uniform(letters),
                  "mcq_lenient/valid_rate": len(letters) / total if total else 0.0}
