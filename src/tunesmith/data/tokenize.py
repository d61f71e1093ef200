"""Turn Examples into token ids and labels, so the loss covers only what the model should learn to write.

Chat examples are rendered with the model's own chat template. To find the assistant's tokens we render
growing prefixes of the conversation: each render must start with the previous one, and the text it adds
is one turn (or, for an assistant, the header the generation prompt adds, then the reply). Each piece is
tokenized separately, so the label mask follows piece boundaries exactly.
"""

from __future__ import annotations

from jinja2 import TemplateError

from tunesmith.data.formats import Example
from tunesmith.errors import DataError

IGNORE_INDEX = -100  # label value the loss skips (transformers' convention)
TRAIN_ON = ("completions", "all")

Segment = tuple[list[int], bool]  # token ids, and whether they carry labels


def encode_example(example: Example, tokenizer, max_length: int, train_on: str = "completions") -> dict | None:
    """{"input_ids", "labels"} truncated from the right to max_length, or None when no label survives."""
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {', '.join(TRAIN_ON)}, got '{train_on}'")
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    input_ids: list[int] = []
    labels: list[int] = []
    for ids, trained in _segments(example, tokenizer, train_on):
        input_ids += ids
        labels += ids if trained or train_on == "all" else [IGNORE_INDEX] * len(ids)
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def encode_dataset(
    examples: list[Example], tokenizer, max_length: int, train_on: str = "completions"
) -> tuple[list[dict], int]:
    """(encoded examples, how many were dropped because truncation left nothing to learn); callers report the count."""
    encoded = [encode_example(example, tokenizer, max_length, train_on) for example in examples]
    kept = [item for item in encoded if item is not None]
    return kept, len(encoded) - len(kept)


def generation_prompt(example: Example, tokenizer) -> tuple[str, str]:
    """(prompt text, reference answer) for evaluation.

    Tokenize the prompt with add_special_tokens=False: it already holds every special token training saw.
    """
    if example.messages is not None:
        if example.messages[-1]["role"] != "assistant":
            raise ValueError(f"{example.where}: the last message must be the assistant's reference answer")
        prompt = _render(tokenizer, example.messages[:-1], True, example.where)
        return prompt, example.messages[-1]["content"]
    if example.prompt is not None:
        bos = tokenizer.bos_token if _bos(tokenizer) else ""
        return bos + example.prompt, example.completion
    raise ValueError(f"{example.where}: text examples have no prompt and reference answer to generate from")


def _segments(example: Example, tokenizer, train_on: str) -> list[Segment]:
    if example.messages is not None:
        if train_on == "all":
            # Nothing to tell apart: render once, so templates that are not prefix-stable work too.
            return [(_ids(tokenizer, _render(tokenizer, example.messages, False, example.where)), True)]
        return _chat_segments(example, tokenizer)
    eos = [_eos(tokenizer)]
    if example.prompt is not None:
        # Plain concatenation, no template: the user's prompt carries whatever separator they want.
        return [(_bos(tokenizer) + _ids(tokenizer, example.prompt), False),
                (_ids(tokenizer, example.completion) + eos, True)]
    if example.text is not None:
        return [(_bos(tokenizer), False), (_ids(tokenizer, example.text) + eos, True)]
    raise ValueError(f"{example.where}: the example has no messages, prompt/completion or text")


def _chat_segments(example: Example, tokenizer) -> list[Segment]:
    messages, where = example.messages, example.where
    segments: list[Segment] = []
    rendered = ""
    for k, message in enumerate(messages):
        if message["role"] == "assistant":
            header = _extension(rendered, _render(tokenizer, messages[:k], True, where), where)
            segments.append((_ids(tokenizer, header), False))
            rendered += header
        turn = _extension(rendered, _render(tokenizer, messages[: k + 1], False, where), where)
        segments.append((_ids(tokenizer, turn), message["role"] == "assistant"))
        rendered += turn
    return segments


def _extension(previous: str, rendered: str, where: str) -> str:
    """The text `rendered` adds after `previous`; a template that rewrites earlier turns cannot be masked."""
    if not rendered.startswith(previous):
        raise DataError(
            f"{where}: this model's chat template is not prefix-stable (rendering one more message changes the "
            "text of earlier ones), so the assistant's tokens cannot be told apart; use train_on: all, "
            "or a model whose template only appends"
        )
    return rendered[len(previous) :]


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool, where: str) -> str:
    if not messages:  # templates refuse empty conversations; the empty prefix renders as nothing
        return ""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            "chat data needs a model with a chat template, and this tokenizer has none; "
            "use prompt_completion or text data, or a chat model"
        )
    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as error:
        raise DataError(f"{where}: the model's chat template rejected this conversation: {error}") from None


def _ids(tokenizer, text: str) -> list[int]:
    # Special tokens come from the template or from _bos/_eos, never from the tokenizer, so none is doubled.
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _bos(tokenizer) -> list[int]:
    """[bos] if this tokenizer adds one by itself (Llama does; SmolLM2 does not), else []."""
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and tokenizer.encode("a")[:1] == [bos] else []


def _eos(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no end-of-sequence token, so examples cannot be terminated")
    return tokenizer.eos_token_id


def text_blocks(encoded: list[dict], block_size: int) -> list[dict]:
    """Continued pre-training: the documents' tokens end to end (each already ends with eos), cut into blocks of
    block_size with a loss on every token. The last block may be shorter (a lone last token, which predicts
    nothing, is left out)."""
    stream = [token for item in encoded for token in item["input_ids"]]
    return [
        {"input_ids": stream[i : i + block_size], "labels": stream[i : i + block_size]}
        for i in range(0, len(stream), block_size)
        if len(stream[i : i + block_size]) > 1  # a single token has nothing to predict
    ]
