"""Render a conversation for generation with the same system message the run was trained with."""

from __future__ import annotations


def render_chat(tokenizer, messages: list[dict], system: str | None) -> str:
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
