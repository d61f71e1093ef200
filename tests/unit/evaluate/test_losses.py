import pytest

from tunesmith.data.collate import PaddingCollator
from tunesmith.data.formats import Example
from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.evaluate.compare import mean_token_loss
from tunesmith.evaluate.losses import answer_encoding, text_encoding, token_losses

TURNS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello there."}, {"role": "user", "content": "Boil an egg?"},
         {"role": "assistant", "content": "Seven minutes."}]


def scored_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != IGNORE_INDEX])


def test_only_the_final_reply_of_a_conversation_is_scored(tokenizer):
    encoded = answer_encoding(Example(messages=TURNS), tokenizer, context=4096)
    assert scored_text(tokenizer, encoded) == "Seven minutes.<|im_end|>\n"


def test_text_passages_score_every_token_up_to_the_context(tokenizer):
    encoded = text_encoding("one two three four five six seven eight nine ten", tokenizer, context=5)
    assert len(encoded["input_ids"]) == 5 and encoded["labels"] == encoded["input_ids"]


def test_per_example_losses_sum_to_the_batched_mean(tiny_llama, tokenizer):
    examples = [Example(messages=TURNS), Example(messages=TURNS[:3]), Example(prompt="Q: salt? A:", completion=" yes")]
    encoded = [answer_encoding(e, tokenizer, context=4096) for e in examples]
    stats = token_losses(tiny_llama, encoded)
    assert stats.shape == (3, 2)
    assert list(stats[:, 1]) == [sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in encoded]
    batched = mean_token_loss(tiny_llama, encoded, PaddingCollator(tokenizer.pad_token_id), batch_size=3)
    assert stats[:, 0].sum() / stats[:, 1].sum() == pytest.approx(batched, rel=1e-5)
    assert not tiny_llama.training
