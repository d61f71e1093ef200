"""The few-shot baseline: the base model shown k training examples before each test question.

Chat examples become earlier turns of the conversation (after the test example's own system message);
prompt/completion examples are joined as text, each followed by a blank line. The same k examples, drawn with a
seeded generator, precede every test question, like a prompt a person would write once; a training example whose
content equals a test example's is never drawn, so no test answer is shown. Only the final answer is scored.
"""

from __future__ import annotations

import random

from tunesmith.data.formats import Example
from tunesmith.errors import DataError
from tunesmith.evaluate.fingerprint import content_key

SHOT_SEPARATOR = "\n\n"


def choose_shots(train: list[Example], test: list[Example], k: int, seed: int) -> list[Example]:
    held_out = {content_key(example) for example in test}
    pool = [example for example in train if content_key(example) not in held_out]
    if len(pool) < k:
        raise DataError(f"few-shot baseline: {k} training examples needed (eval.comparison.few_shot_k) but only "
                        f"{len(pool)} are not also in the test set; lower few_shot_k")
    return random.Random(seed).sample(pool, k)


def _turns(example: Example) -> list[dict]:
    return [message for message in example.messages if message["role"] != "system"]


def with_shots(example: Example, shots: list[Example]) -> Example:
    """The test example with the shots before it; its reference answer stays the last turn or the completion."""
    if example.messages is not None:
        system = example.messages[:1] if example.messages[0]["role"] == "system" else []
        earlier = [turn for shot in shots for turn in _turns(shot)]
        messages = system + earlier + _turns(example)
        return Example(messages=messages, source=example.source, line=example.line, unit=example.unit)
    if example.prompt is not None:
        prefix = "".join(shot.prompt + shot.completion + SHOT_SEPARATOR for shot in shots)
        return Example(prompt=prefix + example.prompt, completion=example.completion, source=example.source,
                       line=example.line, unit=example.unit)
    raise DataError(f"{example.where}: raw text examples have no question to show examples before")
