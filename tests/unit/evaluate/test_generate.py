import pytest
import torch

from tunesmith.evaluate.generate import generate_texts, stream_text

QUESTIONS = [
    "How do I boil an egg so that the yolk stays soft?",
    "Salt?",
    "What is a roux and when should I use one in a sauce for a big family dinner?",
    "Give me three quick weeknight pasta ideas.",
    "ok",
]
MAX_NEW = 12


@pytest.fixture
def model(tiny_llama):
    """tiny_llama with an untied random head: with tied weights it only repeats the prompt's last token ("\\n")."""
    generator = torch.Generator().manual_seed(1)
    tiny_llama.lm_head.weight = torch.nn.Parameter(torch.randn(tiny_llama.lm_head.weight.shape, generator=generator))
    return tiny_llama


@pytest.fixture
def prompts(tokenizer):
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in QUESTIONS
    ]


def test_batched_answers_equal_one_by_one_answers_in_input_order(model, tokenizer, prompts):
    alone = [generate_texts(model, tokenizer, [prompt], MAX_NEW)[0] for prompt in prompts]
    batched = generate_texts(model, tokenizer, prompts, MAX_NEW, batch_size=3)
    assert len(set(alone)) > 1, "answers must differ between prompts for the order check to mean anything"
    assert all(alone)
    assert batched == alone


def test_answers_are_stripped_new_text_only(model, tokenizer, prompts):
    answer = generate_texts(model, tokenizer, prompts[:1], MAX_NEW)[0]
    assert answer == answer.strip()
    assert QUESTIONS[0] not in answer and "assistant" not in answer


def test_restores_padding_side_and_training_mode(model, tokenizer, prompts):
    model.train()
    assert tokenizer.padding_side == "right"
    generate_texts(model, tokenizer, prompts[:2], MAX_NEW)
    assert model.training
    assert tokenizer.padding_side == "right"


def test_greedy_output_does_not_depend_on_training_mode(model, tokenizer, prompts):
    expected = generate_texts(model, tokenizer, prompts[:1], MAX_NEW)
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5  # changes the answers whenever generation runs in train mode
    model.train()
    assert generate_texts(model, tokenizer, prompts[:1], MAX_NEW) == expected


def test_stops_at_extra_eos_ids_from_the_generation_config(model, tokenizer, prompts):
    inputs = tokenizer(prompts[0], add_special_tokens=False, return_tensors="pt")
    first_new = model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, -1]
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, int(first_new)]
    assert generate_texts(model, tokenizer, prompts[:1], MAX_NEW) == [tokenizer.decode([first_new]).strip()]


def test_works_on_a_peft_wrapped_model(model, tokenizer, prompts):
    from peft import LoraConfig, get_peft_model

    expected = generate_texts(model, tokenizer, prompts[:2], MAX_NEW)
    # LoRA starts as a no-op (B = 0), so the wrapped model must answer exactly like the base.
    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert generate_texts(wrapped, tokenizer, prompts[:2], MAX_NEW) == expected


def test_stream_pieces_join_to_the_generated_answer(model, tokenizer, prompts):
    for prompt in prompts[:3]:
        pieces = list(stream_text(model, tokenizer, prompt, MAX_NEW))
        assert len(pieces) > 1
        assert "".join(pieces) == generate_texts(model, tokenizer, [prompt], MAX_NEW)[0]


def test_stream_restores_training_mode_and_reraises_generation_errors(model, tokenizer, prompts):
    model.train()
    list(stream_text(model, tokenizer, prompts[0], 4))
    assert model.training
    with pytest.raises(ValueError):
        list(stream_text(model, tokenizer, prompts[0], max_new_tokens=-1))
