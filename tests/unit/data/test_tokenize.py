"""Tokenization with the real SmolLM2 tokenizer: label masks, truncation and generation prompts."""

import pytest

from tunesmith.data.formats import Example
from tunesmith.data.tokenize import IGNORE_INDEX, encode_dataset, encode_example, generation_prompt
from tunesmith.errors import DataError

SYSTEM = {"role": "system", "content": "You are a cooking assistant."}
TWO_TURNS = [
    SYSTEM,
    {"role": "user", "content": "How long do I boil an egg?"},
    {"role": "assistant", "content": "Nine minutes for hard-boiled."},
    {"role": "user", "content": "And soft?"},
    {"role": "assistant", "content": "About six minutes."},
]


def labelled_runs(encoded, tokenizer) -> list[str]:
    """The decoded text of each contiguous run of labelled tokens."""
    runs, current = [], []
    for label in encoded["labels"] + [IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs


def test_chat_trains_only_on_every_assistant_reply_and_its_end_of_turn(tokenizer):
    encoded = encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=512)
    full = tokenizer.apply_chat_template(TWO_TURNS, tokenize=False)
    assert encoded["input_ids"] == tokenizer.encode(full, add_special_tokens=False)
    assert labelled_runs(encoded, tokenizer) == [
        "Nine minutes for hard-boiled.<|im_end|>\n",
        "About six minutes.<|im_end|>\n",
    ]
    labelled = [i for i, label in enumerate(encoded["labels"]) if label != IGNORE_INDEX]
    assert [encoded["input_ids"][i] for i in labelled] == [encoded["labels"][i] for i in labelled]
    masked = tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label == IGNORE_INDEX])
    assert masked == (
        "<|im_start|>system\nYou are a cooking assistant.<|im_end|>\n"
        "<|im_start|>user\nHow long do I boil an egg?<|im_end|>\n<|im_start|>assistant\n"
        "<|im_start|>user\nAnd soft?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chat_without_system_gets_the_template_default_untrained(tokenizer):
    messages = TWO_TURNS[1:3]
    encoded = encode_example(Example(messages=messages), tokenizer, max_length=512)
    assert tokenizer.decode(encoded["input_ids"]).startswith("<|im_start|>system\nYou are a helpful AI assistant")
    assert labelled_runs(encoded, tokenizer) == ["Nine minutes for hard-boiled.<|im_end|>\n"]


def test_train_on_all_labels_every_token(tokenizer):
    encoded = encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=512, train_on="all")
    assert encoded["labels"] == encoded["input_ids"]


def test_prompt_completion_trains_on_completion_and_eos_without_template(tokenizer):
    encoded = encode_example(Example(prompt="Eggs: boil for", completion=" nine minutes."), tokenizer, 512)
    prompt_ids = tokenizer.encode("Eggs: boil for", add_special_tokens=False)
    completion_ids = tokenizer.encode(" nine minutes.", add_special_tokens=False) + [tokenizer.eos_token_id]
    assert encoded["input_ids"] == prompt_ids + completion_ids
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt_ids) + completion_ids


def test_text_trains_on_everything_plus_eos(tokenizer):
    encoded = encode_example(Example(text="Whisk the eggs."), tokenizer, 512)
    assert encoded["input_ids"] == tokenizer.encode("Whisk the eggs.") + [tokenizer.eos_token_id]
    assert encoded["labels"] == encoded["input_ids"]


class BosAddingTokenizer:
    """A stand-in for tokenizers like Llama's that add bos on their own."""

    bos_token, bos_token_id, eos_token_id = "<s>", 1, 2

    def encode(self, text, add_special_tokens=True):
        return ([self.bos_token_id] if add_special_tokens else []) + [ord(c) for c in text]


def test_bos_is_added_once_only_when_the_tokenizer_adds_it(tokenizer):
    fake = BosAddingTokenizer()
    assert encode_example(Example(text="ab"), fake, 10)["input_ids"] == [1, 97, 98, 2]
    assert encode_example(Example(prompt="a", completion="b"), fake, 10)["input_ids"] == [1, 97, 98, 2]
    assert generation_prompt(Example(prompt="a", completion="b"), fake) == ("<s>a", "b")
    # SmolLM2's bos is <|im_start|>, which its template already writes: nothing may be prepended.
    encoded = encode_example(Example(prompt="a", completion="b"), tokenizer, 10)
    assert tokenizer.bos_token_id not in encoded["input_ids"]


def test_truncation_keeps_the_start(tokenizer):
    full = encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=512)
    cut = encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=40)
    assert cut == {"input_ids": full["input_ids"][:40], "labels": full["labels"][:40]}


def test_example_with_no_label_left_after_truncation_is_none(tokenizer):
    encoded = encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=512)
    first_label = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE_INDEX)
    assert encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=first_label) is None
    assert encode_example(Example(messages=TWO_TURNS), tokenizer, max_length=first_label + 1) is not None


def test_encode_dataset_counts_dropped_examples(tokenizer):
    examples = [Example(messages=TWO_TURNS), Example(text="Eggs."), Example(prompt="a long prompt", completion="b")]
    encoded, dropped = encode_dataset(examples, tokenizer, max_length=3, train_on="completions")
    assert dropped == 2
    assert encoded == [encode_example(examples[1], tokenizer, 3)]


def test_generation_prompt(tokenizer):
    prompt, reference = generation_prompt(Example(messages=TWO_TURNS), tokenizer)
    assert prompt == tokenizer.apply_chat_template(TWO_TURNS[:-1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("And soft?<|im_end|>\n<|im_start|>assistant\n")
    assert reference == "About six minutes."
    assert generation_prompt(Example(prompt="2+2=", completion="4"), tokenizer) == ("2+2=", "4")
    with pytest.raises(ValueError, match="text examples have no prompt"):
        generation_prompt(Example(text="x"), tokenizer)


def test_template_that_rewrites_earlier_turns_is_refused_unless_training_on_all(tokenizer, monkeypatch):
    counting = "{{ messages | length }}\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    monkeypatch.setattr(tokenizer, "chat_template", counting)
    example = Example(messages=TWO_TURNS, source="train.jsonl", line=4)
    with pytest.raises(DataError) as caught:
        encode_example(example, tokenizer, 512)
    assert str(caught.value) == (
        "train.jsonl:4: this model's chat template is not prefix-stable (rendering one more message changes the "
        "text of earlier ones), so the assistant's tokens cannot be told apart; use train_on: all, or a model "
        "whose template only appends"
    )
    assert encode_example(example, tokenizer, 512, train_on="all") is not None


def test_chat_needs_a_chat_template(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", None)
    with pytest.raises(DataError) as caught:
        encode_example(Example(messages=TWO_TURNS), tokenizer, 512)
    assert str(caught.value) == (
        "chat data needs a model with a chat template, and this tokenizer has none; "
        "use prompt_completion or text data, or a chat model"
    )


def test_template_errors_name_the_record(tokenizer, monkeypatch):
    strict = "{% if messages[-1].role == 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}x"
    monkeypatch.setattr(tokenizer, "chat_template", strict)
    with pytest.raises(DataError) as caught:
        encode_example(Example(messages=TWO_TURNS, source="a.jsonl", line=2), tokenizer, 512)
    assert str(caught.value) == "a.jsonl:2: the model's chat template rejected this conversation: roles must alternate"


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="train_on must be one of completions, all, got 'prompts'"):
        encode_example(Example(text="x"), tokenizer, 8, train_on="prompts")
    with pytest.raises(ValueError, match="max_length must be at least 1, got 0"):
        encode_example(Example(text="x"), tokenizer, 0)
