"""Prompt rendering through a model's chat template, with per-model options and no double BOS, and the
token that ends the model's answer turn.

Training, exact scoring and sampling all build prompt ids with `prompt_token_ids`, and training targets
and exact scoring end every value with `turn_terminator` (the chat turn's end token, or the tokenizer's EOS
with `ChatOptions(terminator="eos")`), so the three agree on what an answer looks like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

# stands in for an answer when rendering a finished assistant turn; plain text that no template trims
ANSWER_SENTINEL = "cftanswersentinel"

# template_kwargs bounds: a chat template takes a few flags and short strings (Qwen3's enable_thinking,
# gpt-oss's reasoning_effort, a tools list of a few entries), far below these
TEMPLATE_KWARGS_MAX_DEPTH = 8
TEMPLATE_KWARGS_MAX_NODES = 1_000      # values and keys counted whole, as JSON would write them out
TEMPLATE_KWARGS_MAX_STR = 10_000       # characters of any one string


def check_template_kwargs(kwargs) -> dict:
    """`kwargs` itself if it is a JSON object of bounded depth and size (string keys; strings, finite
    numbers, booleans, null, lists and objects as values); else ValueError naming the first bad path.

    A spec is saved as JSON and compared with the saved one on resume, so a value JSON cannot hold (a
    date, a set, bytes, an integer key, NaN) would make the sweep refuse its own run directory forever;
    and YAML anchors can nest a small file into an exponentially large value (an alias bomb), so the
    walk counts every node it visits, as JSON would expand it, and stops at the bound."""
    budget = [TEMPLATE_KWARGS_MAX_NODES]

    def walk(x, path: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"template_kwargs: more than {TEMPLATE_KWARGS_MAX_NODES} values in all (YAML "
                             "anchors count once per use)")
        if depth > TEMPLATE_KWARGS_MAX_DEPTH:
            raise ValueError(f"{path}: nested deeper than {TEMPLATE_KWARGS_MAX_DEPTH} levels")
        if isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, str):
                    raise ValueError(f"{path}: key {k!r} is a {type(k).__name__}; JSON keys are strings")
                walk(v, f"{path}.{k}", depth + 1)
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}.{i}", depth + 1)
        elif isinstance(x, str):
            if len(x) > TEMPLATE_KWARGS_MAX_STR:
                raise ValueError(f"{path}: a string longer than {TEMPLATE_KWARGS_MAX_STR} characters")
        elif isinstance(x, float):
            if not math.isfinite(x):
                raise ValueError(f"{path}: {x} is not a JSON number")
        elif x is None or isinstance(x, (bool, int)):
            pass
        else:
            raise ValueError(f"{path}: a {type(x).__name__} is not a JSON value (strings, numbers, booleans, "
                             "null, lists and mappings only)")

    if not isinstance(kwargs, dict):
        raise ValueError(f"template_kwargs: must be a mapping, got {type(kwargs).__name__}")
    walk(kwargs, "template_kwargs", 0)
    return kwargs


@dataclass(frozen=True)
class ChatOptions:
    """Per-model chat settings. `enable_thinking=False` turns Qwen3's thinking off; `template_kwargs`
    reach the chat template as extra variables; `use_chat_template=False` sends raw text (base models);
    `assistant_prefix` is text forced at the start of the answer, after the rendered prompt (gpt-oss-20b
    answers in its final channel only after "<|channel|>final<|message|>", as the paper's code forces).
    `terminator` is the token each value ends with in training targets and exact scoring: "turn_end", the
    token the chat template ends an assistant turn with (what the model writes after an answer in chat),
    or "eos", the tokenizer's EOS, as the paper's reference code does (turn_terminator)."""
    use_chat_template: bool = True
    enable_thinking: bool | None = None
    system_prompt: str | None = None
    template_kwargs: dict = field(default_factory=dict)
    assistant_prefix: str | None = None
    terminator: Literal["turn_end", "eos"] = "turn_end"

    def __post_init__(self):
        check_template_kwargs(self.template_kwargs)
        for name in ("system_prompt", "assistant_prefix"):   # a few sentences at most in any real spec
            text = getattr(self, name)
            if text is not None and len(text) > TEMPLATE_KWARGS_MAX_STR:
                raise ValueError(f"{name}: longer than {TEMPLATE_KWARGS_MAX_STR} characters")


def uses_template(tokenizer, options: ChatOptions) -> bool:
    return options.use_chat_template and bool(getattr(tokenizer, "chat_template", None))


def _template(tokenizer, messages: list[dict], options: ChatOptions, add_generation_prompt: bool) -> str:
    if options.system_prompt:
        messages = [{"role": "system", "content": options.system_prompt}] + messages
    kwargs = dict(options.template_kwargs)
    if options.enable_thinking is not None:
        kwargs["enable_thinking"] = options.enable_thinking
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         **kwargs)


def render_chat(tokenizer, user_text: str, options: ChatOptions = ChatOptions()) -> str:
    """The prompt text up to where the answer starts (the assistant prefix included)."""
    text = user_text
    if uses_template(tokenizer, options):
        text = _template(tokenizer, [{"role": "user", "content": user_text}], options, add_generation_prompt=True)
    return text + (options.assistant_prefix or "")


def prompt_token_ids(tokenizer, user_text: str, options: ChatOptions = ChatOptions()) -> list[int]:
    """Token ids of the rendered prompt with exactly one BOS where the tokenizer uses one.

    A chat template usually writes BOS into the text already; tokenizing that text with special tokens
    on would add a second one (a pitfall of the reference code), so we tokenize without, then add BOS
    only if the tokenizer normally adds it and the template did not.
    """
    ids = list(tokenizer(render_chat(tokenizer, user_text, options), add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return ids
    adds_bos = tokenizer("", add_special_tokens=True)["input_ids"][:1] == [bos]
    if adds_bos and ids[:1] != [bos]:
        ids.insert(0, bos)
    while ids[:2] == [bos, bos]:
        ids.pop(0)
    return ids


def special_token_ids(tokenizer) -> set[int]:
    """Ids of every special token: the named ones and added tokens marked special (e.g. <end_of_turn>)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, tok in added.items() if getattr(tok, "special", False)}


def turn_terminator(tokenizer, options: ChatOptions = ChatOptions()) -> int:
    """The token that ends the model's answer: the first special token its chat template writes after an
    assistant message's content; the tokenizer's EOS for raw prompts (no template, or
    `use_chat_template=False`) and for templates that write no special token there.

    What this gives per model family (the paper's models; each chat template checked by rendering):
    - Gemma-3-it: <end_of_turn> (id 106), not its EOS <eos> (id 1);
    - Llama-3.x-Instruct: <|eot_id|> (128009), not <|end_of_text|> (128001);
    - Qwen3 and SmolLM2-Instruct (ChatML): <|im_end|>, which is also their tokenizer's EOS;
    - gpt-oss: <|return|>, which its template writes after a final assistant message (and its EOS);
    - base models and the tiny test model without a template: EOS.
    The trained value ends with the token the model would write after an answer, so the model learns
    to stop as in chat, and exact scoring measures the probability of exactly that ending.

    `options.terminator == "eos"` gives the tokenizer's EOS whatever the template writes (the paper's
    reference code ends every value with it).
    """
    if options.terminator == "turn_end" and uses_template(tokenizer, options):
        messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": ANSWER_SENTINEL}]
        text = _template(tokenizer, messages, options, add_generation_prompt=False)
        cut = text.rfind(ANSWER_SENTINEL)
        if cut < 0:
            raise ValueError("the chat template dropped the assistant message; cannot find its terminator")
        specials = special_token_ids(tokenizer)
        tail = tokenizer(text[cut + len(ANSWER_SENTINEL):], add_special_tokens=False)["input_ids"]
        for tok in tail:
            if tok in specials:
                return int(tok)
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token_id and its chat template no turn terminator")
    return int(tokenizer.eos_token_id)
