"""Score completions produced elsewhere (another engine, a hosted API) without loading a model.

The input is JSONL, one prompt per line, families and parameters named as `python -m orchestrator.targets`
takes them (prompt parameters, e.g. uniform's a and b):

    {"family": "gaussian", "params": {"mu": 1.0, "sigma": 2.0}, "num_decimals": 2, "samples": ["0.53", ...]}

`num_decimals` (optional; ignored for integer families) is the precision the completions were asked
for: the reference quantiles are rounded to it (cft.metrics.calibration_error). Other keys are kept
out of the scoring (metadata such as a model name is allowed). The result is
{"rows": [...], "summary": {...}, "families": {...}}: one row per input line, in input order, with the
paper's sampling metrics (raw W1 on valid samples, valid and support-violation rates, moment errors,
the KS or chi-square test and whether it passes at 0.05) and the calibration error with its standard
error; the summary is family-balanced (cft.metrics.SAMPLE_SUMMARY, `gof_pass` being the share of
prompts that pass); `families` holds each family's means, the per-family table of the paper. Values
that cannot be computed (W1 with no valid sample) are null, so the result is strict JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cft.families import InvalidParameters
from cft.metrics import SAMPLE_SUMMARY, family_balanced, sample_metrics
from cft.splits import TaskPrompt, make_prompt

SUMMARY_METRICS = SAMPLE_SUMMARY


# Bounds on one line, each far above what the paper's protocol needs (100 samples a prompt, answers of
# a few characters, at most 5 decimals, integer supports of a few hundred values), so a file that
# exceeds one is refused naming its line instead of exhausting the machine.
MAX_LINE_BYTES = 64 * 2**20     # one line of JSON
MAX_SAMPLES = 100_000           # completions a prompt
MAX_SAMPLE_CHARS = 10_000       # characters a completion
MAX_DECIMALS = 15               # float64 holds 15-17 significant digits: more decimals change nothing
MAX_PARAM = 1e12                # |a parameter|: beyond it float64 spacing exceeds the answers' decimals
MAX_INTEGER_SUPPORT = 1_000_000 # integer values the reference lists between its 1e-12 and 1 - 1e-12 levels
MAX_INTEGER_PARAM = 1e6         # |a parameter| of an integer family (n, M, r, lambda, mu1...): the paper's
                                # grids stay below 100; scipy's hypergeometric ppf at M=1e12 runs for minutes


class CompletionsFormatError(ValueError):
    """A completions file that cannot be scored; the message names the file and line."""


@dataclass
class PromptCompletions:
    line: int
    prompt: TaskPrompt
    num_decimals: int | None
    samples: list[str]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_line(text: str, samples: int | None = None) -> tuple[TaskPrompt, int | None, list[str]]:
    """One JSONL line as (prompt, num_decimals, completions); raises ValueError saying what is wrong."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object with family, params and samples")
    missing = [k for k in ("family", "params", "samples") if k not in record]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    params, completions = record["params"], record["samples"]
    if not isinstance(params, dict) or not all(_number(v) for v in params.values()):
        raise ValueError("params must be an object of numbers, e.g. {\"mu\": 1.0, \"sigma\": 2.0}")
    big = [k for k, v in params.items() if abs(v) > MAX_PARAM or not math.isfinite(v)]
    if big:
        raise ValueError(f"params {', '.join(map(str, big))}: must be finite and at most {MAX_PARAM:g} in magnitude")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise ValueError("samples must be a list of strings (the completions' text)")
    if not completions:
        raise ValueError("samples is empty")
    if len(completions) > MAX_SAMPLES:
        raise ValueError(f"{len(completions)} samples; at most {MAX_SAMPLES} a prompt")
    if any(len(c) > MAX_SAMPLE_CHARS for c in completions):
        raise ValueError(f"a sample is longer than {MAX_SAMPLE_CHARS} characters")
    decimals = record.get("num_decimals")
    if decimals is not None and not (isinstance(decimals, int) and not isinstance(decimals, bool)
                                     and 0 <= decimals <= MAX_DECIMALS):
        raise ValueError(f"num_decimals must be an integer from 0 to {MAX_DECIMALS} (got {str(decimals)[:40]})")
    if not isinstance(record["family"], str):
        raise ValueError("family must be a string")
    try:
        prompt = make_prompt(record["family"], params, split="completions")
    except InvalidParameters as err:
        raise ValueError(str(err)) from None
    _check_scale(prompt)
    return prompt, decimals, completions[:samples] if samples else completions


def _check_scale(prompt: TaskPrompt) -> None:
    """ValueError if scoring the prompt would list more integer values than MAX_INTEGER_SUPPORT (a
    geometric p=1e-15 spans 10^16 of them) or its target has no finite quantiles; two ppf calls."""
    import numpy as np

    from cft.calibration import _EDGE
    from cft.families import get_family

    fam = get_family(prompt.family)
    big = [k for k, v in prompt.params if fam.integer and abs(v) > MAX_INTEGER_PARAM]
    if big:
        raise ValueError(f"params {', '.join(big)}: at most {MAX_INTEGER_PARAM:g} for the integer family {fam.name}")
    dist = fam.frozen(prompt.param_dict)
    with np.errstate(all="ignore"):
        ends = (float(dist.ppf(_EDGE)), float(dist.ppf(1 - _EDGE))) if fam.integer else \
               (float(dist.ppf(0.001)), float(dist.ppf(0.999)))
    if not all(math.isfinite(e) for e in ends):
        raise ValueError(f"{prompt.family} with these params has no finite quantiles to score against")
    if fam.integer and ends[1] - ends[0] + 1 > MAX_INTEGER_SUPPORT:
        raise ValueError(f"{prompt.family} with these params spans {ends[1] - ends[0] + 1:.3g} integer values; "
                         f"scoring lists them, at most {MAX_INTEGER_SUPPORT}")


def read_completions(path: str | Path, samples: int | None = None) -> list[PromptCompletions]:
    """Every non-blank line of the file; raises CompletionsFormatError naming the first bad line."""
    if samples is not None and samples < 1:
        raise CompletionsFormatError(f"samples must be >= 1 (got {samples})")
    out = []
    with open(path, encoding="utf-8") as handle:
        lineno = 0
        while text := handle.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(text) > MAX_LINE_BYTES:
                raise CompletionsFormatError(f"{path}:{lineno}: longer than {MAX_LINE_BYTES} characters")
            if not text.strip():
                continue
            try:
                out.append(PromptCompletions(lineno, *parse_line(text, samples)))
            except (ValueError, OverflowError, MemoryError, RecursionError) as err:
                raise CompletionsFormatError(f"{path}:{lineno}: {err}") from None
    if not out:
        raise CompletionsFormatError(f"{path}: no prompts (expected one JSON object per line)")
    return out


def _json_safe(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _safe(metrics: dict) -> dict:
    return {k: _json_safe(v) for k, v in metrics.items()}


def _sample_metrics(rec: PromptCompletions) -> dict:
    """The line's metrics; a failure a bound missed names the line (the CLI's exit 2), never a traceback."""
    try:
        return sample_metrics(rec.prompt, rec.samples, rec.num_decimals)
    except (ValueError, OverflowError, MemoryError, FloatingPointError, ZeroDivisionError) as err:
        raise CompletionsFormatError(f"line {rec.line}: cannot be scored ({type(err).__name__}: {err})") from None


def score_completions(records: list[PromptCompletions]) -> dict:
    """Averages are taken before NaN becomes null: a prompt whose W1 cannot be computed makes its
    family's and the summary's W1 null instead of silently leaving the average."""
    rows = [{"line": rec.line, "family": rec.prompt.family, "key": rec.prompt.key, "num_decimals": rec.num_decimals,
             **_sample_metrics(rec)} for rec in records]
    summary = family_balanced(rows, SUMMARY_METRICS)
    summary |= {"n_prompts": len(rows), "n_families": len({r["family"] for r in rows})}
    families = {family: _safe(family_balanced([r for r in rows if r["family"] == family], SUMMARY_METRICS))
                for family in dict.fromkeys(r["family"] for r in rows)}
    return {"rows": [_safe(r) for r in rows], "summary": _safe(summary), "families": families}


def score_completions_file(path: str | Path, samples: int | None = None) -> dict:
    """{"rows": [...], "summary": {...}} for a completions JSONL file (see the module docstring);
    `samples`: use only the first N completions of each prompt. Raises CompletionsFormatError (the CLI's
    exit 2) for a malformed file, FileNotFoundError for a missing one."""
    return score_completions(read_completions(path, samples))
