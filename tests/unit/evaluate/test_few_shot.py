import pytest

from tunesmith.data.formats import Example
from tunesmith.data.tokenize import IGNORE_INDEX, generation_prompt
from tunesmith.errors import DataError
from tunesmith.evaluate.few_shot import choose_shots, with_shots
from tunesmith.evaluate.fingerprint import content_key
from tunesmith.evaluate.losses import answer_encoding

SYSTEM = {"role": "system", "content": "You are Sous."}


def chat(question: str, answer: str, source: str = "train.jsonl", line: int = 1) -> Example:
    messages = [SYSTEM, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return Example(messages=messages, source=source, line=line)


TRAIN = [chat(f"question {i}?", f"answer {i}.", line=i + 1) for i in range(20)]
# Two test examples are word for word in the training file (a common leak): they must never be shown.
TEST = [chat("question 3?", "answer 3.", "test.jsonl", 1), chat("question 7?", "answer 7.", "test.jsonl", 2),
        chat("new question?", "new answer.", "test.jsonl", 3)]


def test_k_shots_seeded_and_never_a_test_example():
    shots = choose_shots(TRAIN, TEST, 5, seed=1)
    assert len(shots) == 5 and len({content_key(s) for s in shots}) == 5
    assert not {content_key(s) for s in shots} & {content_key(t) for t in TEST}
    assert shots == choose_shots(TRAIN, TEST, 5, seed=1)
    assert shots != choose_shots(TRAIN, TEST, 5, seed=2)
    # Every eligible example is drawn at some seed; the leaked ones never are.
    drawn = {s.line for seed in range(200) for s in choose_shots(TRAIN, TEST, 5, seed)}
    assert drawn == set(range(1, 21)) - {4, 8}


def test_too_few_eligible_examples_is_a_clear_error():
    with pytest.raises(DataError, match="19 training examples needed .* only 18 are not also in the test set"):
        choose_shots(TRAIN, TEST, 19, seed=0)


def test_the_prompt_holds_exactly_k_earlier_turns_then_the_question():
    shots = choose_shots(TRAIN, TEST, 3, seed=0)
    prompted = with_shots(TEST[2], shots)
    roles = [m["role"] for m in prompted.messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user", "assistant"]
    assert prompted.messages[1:7] == [m for s in shots for m in s.messages[1:]]
    assert prompted.messages[-2:] == TEST[2].messages[-2:]
    assert prompted.where == "test.jsonl:3"


def test_only_the_last_answer_is_scored(tokenizer):
    shots = choose_shots(TRAIN, TEST, 3, seed=0)
    prompted = with_shots(TEST[2], shots)
    encoded = answer_encoding(prompted, tokenizer, context=4096)
    scored = [t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != IGNORE_INDEX]
    alone = answer_encoding(TEST[2], tokenizer, context=4096)
    assert scored == [t for t, label in zip(alone["input_ids"], alone["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(scored).startswith("new answer.")
    prompt, reference = generation_prompt(prompted, tokenizer)
    assert reference == "new answer." and prompt.count("<|im_start|>assistant") == 4
    assert all(f"answer {s.line - 1}." in prompt for s in shots)


def test_long_sequences_lose_their_start_not_the_answer(tokenizer):
    encoded = answer_encoding(with_shots(TEST[2], TRAIN[:10]), tokenizer, context=24)
    assert len(encoded["input_ids"]) == 24
    assert tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"])
                             if label != IGNORE_INDEX]).startswith("new answer.")


def test_prompt_completion_shots_are_joined_as_text():
    train = [Example(prompt=f"Q{i}: ", completion=f"A{i}") for i in range(4)]
    prompted = with_shots(Example(prompt="Q: x ", completion="A: y"), train[:2])
    assert prompted.prompt == "Q0: A0\n\nQ1: A1\n\nQ: x " and prompted.completion == "A: y"
