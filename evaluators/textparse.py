"""How the paper's broader evaluations read a generation (facts from its code, restated here):
thinking removed, then an open random answer's first line normalised, or an MCQ parsed strictly line
by line. Both reference-exact evaluations (evaluators.openrandom, evaluators.mcq) use these."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>.*$", re.DOTALL | re.IGNORECASE)   # a block the budget cut off
_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
LETTERS = ("A", "B", "C", "D")


def strip_thinking(text: str) -> str:
    """The answer without thinking: closed blocks, an unclosed one to the end, and stray tags removed."""
    text = _THINK_OPEN.sub("", _THINK_BLOCK.sub("", text))
    return _THINK_TAG.sub("", text).strip()


def normalize_answer(text: str | None) -> str:
    """An open random answer as the reference compares them: its first non-empty line, whitespace
    runs collapsed to one space, one pair of matching surrounding quotes removed; case kept.
    "" where there is no answer (None: the engine's truncated completion)."""
    lines = [line.strip() for line in strip_thinking(text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    answer = _SPACES.sub(" ", lines[0])
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "'\"":
        answer = answer[1:-1].strip()
    return answer


@dataclass
class ParsedMcq:
    """One generated question. parseable: every line is one of the expected fields, each field
    present once and non-empty, and the answer exactly one of A-D (`errors` lists what failed)."""
    question: str = ""
    options: dict[str, str] = field(default_factory=dict)
    answer: str = ""
    explanation: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def parseable(self) -> bool:
        return not self.errors

    @property
    def distinct_options(self) -> bool:
        values = [v for v in self.options.values() if v]
        return len(values) == 4 and len(set(values)) == 4


_FIELDS = {"Question:": "question", "Correct Answer:": "answer", "Explanation:": "explanation"}


def _field_of(line: str) -> tuple[str, str] | None:
    """(field name, its text) for a line that starts one of the expected fields, else None."""
    for letter in LETTERS:
        if line.startswith(f"{letter}."):
            return letter, line[2:]
    for prefix, name in _FIELDS.items():
        if line.startswith(prefix):
            return name, line[len(prefix):]
    return None


def parse_mcq(text: str | None) -> ParsedMcq:
    """The reference's strict parser: any other line, a repeated or missing field, an empty field or
    an answer other than exactly A, B, C or D makes the generation unparseable."""
    parsed = ParsedMcq()
    lines = [line.strip() for line in strip_thinking(text or "").splitlines() if line.strip()]
    if not lines:
        parsed.errors.append("empty_response")
        return parsed
    seen: set[str] = set()
    for line in lines:
        found = _field_of(line)
        if found is None:
            parsed.errors.append("unexpected_line")
            continue
        name, value = found
        if name in seen:
            parsed.errors.append(f"duplicate_{name}")
            continue
        seen.add(name)
        value = _SPACES.sub(" ", value.strip())
        if name in LETTERS:
            parsed.options[name] = value
        else:
            setattr(parsed, name, value)
    for name in (*LETTERS, *_FIELDS.values()):
        if name not in seen:
            parsed.errors.append(f"missing_{name}")
        elif not (parsed.options.get(name) if name in LETTERS else getattr(parsed, name)):
            parsed.errors.append(f"empty_{name}")
    if parsed.answer not in LETTERS and "missing_answer" not in parsed.errors:
        parsed.errors.append("invalid_answer")
    return parsed
