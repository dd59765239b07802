"""Prompt rendering through a model's chat template, with per-model options and no double BOS, and the
token that ends the model's answer turn.

Training, exact scoring and sampling all build prompt ids with `prompt_token_ids`, and training targets
and exact scoring end every value with `turn_terminator` (the chat turn's end token, or the tokenizer's EOS
with `ChatOptions(terminator="eos")`), so the three agree on what an answer looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# stands in for an answer when rendering a finished assistant turn; plain text that no template trims
ANSWER_SENTINEL = "cftanswersentinel"


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
