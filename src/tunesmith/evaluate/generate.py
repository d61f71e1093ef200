"""Greedy batched generation for evaluation, and token streaming for the interactive chat.

Prompts arrive already rendered with the chat template, so they are tokenized without special tokens.
Works for plain transformers models and PEFT-wrapped ones alike: both expose `generate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Thread

import torch


@contextmanager
def _eval_mode(model):
    """Run in eval mode (no dropout) and give the model back in whatever mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def _left_padding(tokenizer):
    """Decoder-only models continue from the last position, so batched prompts must be padded on the left."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = previous


def _eos_ids(model, tokenizer) -> list[int]:
    """The tokenizer's eos plus any the generation config adds (chat models often stop on several tokens)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _generation_kwargs(model, tokenizer, max_new_tokens: int, temperature: float = 0.0) -> dict:
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    return {"max_new_tokens": max_new_tokens, "eos_token_id": eos_ids, "pad_token_id": pad_id, **sampling}


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate_texts(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers for rendered prompts, in the order given; batching does not change any answer."""
    # Batches of similar length waste little compute on padding; characters are a good enough proxy for tokens.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    kwargs = _generation_kwargs(model, tokenizer, max_new_tokens)
    answers: list[str] = [""] * len(prompts)
    with _eval_mode(model), _left_padding(tokenizer):
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            texts = [prompts[i] for i in indices]
            batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(_device(model))
            output = model.generate(**batch, **kwargs)
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for i, text in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                answers[i] = text.strip()
    return answers


def _strip_stream(pieces: Iterator[str]) -> Iterator[str]:
    """Drop leading whitespace and hold back trailing whitespace, so the pieces join to the stripped answer."""
    started = False
    pending = ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        body = piece.rstrip()
        if body:
            yield pending + body
            pending = piece[len(body) :]
        else:
            pending += piece


@torch.no_grad()
def stream_text(model, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 0.0) -> Iterator[str]:
    """Yield the answer to a rendered prompt piece by piece as it is generated (greedy when temperature is 0)."""
    from transformers import TextIteratorStreamer

    inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(_device(model))
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = {**inputs, **_generation_kwargs(model, tokenizer, max_new_tokens, temperature), "streamer": streamer}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            model.generate(**kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread below
            failure.append(error)
            streamer.end()  # unblock the consumer, which would otherwise wait forever

    with _eval_mode(model):
        worker = Thread(target=run, daemon=True)
        worker.start()
        yield from _strip_stream(streamer)
        worker.join()
    if failure:
        raise failure[0]
