"""Prompt rendering through a model's chat template, with per-model options and no double BOS."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatOptions:
    """Per-model chat settings. `enable_thinking=False` turns Qwen3's thinking off; `template_kwargs`
    reach the chat template as extra variables; `use_chat_template=False` sends raw text (base models)."""
    use_chat_template: bool = True
    enable_thinking: bool | None = None
    system_prompt: str | None = None
    template_kwargs: dict = field(default_factory=dict)


def render_chat(tokenizer, user_text: str, options: ChatOptions = ChatOptions()) -> str:
    if not options.use_chat_template or not getattr(tokenizer, "chat_template", None):
        return user_text
    messages = [{"role": "user", "content": user_text}]
    if options.system_prompt:
        messages.insert(0, {"role": "system", "content": options.system_prompt})
    kwargs = dict(options.template_kwargs)
    if options.enable_thinking is not None:
        kwargs["enable_thinking"] = options.enable_thinking
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


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
